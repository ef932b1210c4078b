"""Store-side state of transport security: cached MTA-STS policies and TLS-RPT counters.

Plain values in, plain values out: the delivery code (``phigate.mta.delivery``) turns
them into its policy objects; the queue package never imports it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from phigate.queue.db import read_only, writer_turn
from phigate.queue.models import MtaStsPolicyRow, TlsReportCount, TlsReportSent


@dataclass(frozen=True)
class StoredStsPolicy:
    policy_id: str
    mode: str
    mx: tuple[str, ...]
    max_age: int
    fetched_at: datetime
    expires_at: datetime
    refresh_failed_at: datetime | None = None


@dataclass(frozen=True)
class SessionKey:
    """What TLS-RPT counts sessions by (one row per key and day)."""

    policy_domain: str
    policy_type: str  # sts | tlsa | no-policy-found
    policy_id: str = ""
    result_type: str = ""  # "" for a success, else an RFC 8460 result type
    receiving_mx: str = ""


@dataclass(frozen=True)
class SessionCount:
    key: SessionKey
    count: int


class TransportStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._readers = sessionmaker(read_only(engine), expire_on_commit=False)
        self._writer_turn = writer_turn(engine)

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        with self._writer_turn, self._sessions.begin() as session:
            yield session

    # -- MTA-STS ------------------------------------------------------------------------

    def get_sts(self, domain: str) -> StoredStsPolicy | None:
        with self._readers.begin() as session:
            row = session.get(MtaStsPolicyRow, domain)
            if row is None:
                return None
            return StoredStsPolicy(row.policy_id, row.mode, tuple(row.mx), row.max_age,
                                   row.fetched_at, row.expires_at, row.refresh_failed_at)

    def put_sts(self, domain: str, policy: StoredStsPolicy) -> None:
        with self._writing() as session:
            row = session.get(MtaStsPolicyRow, domain)
            if row is None:
                row = MtaStsPolicyRow(domain=domain)
                session.add(row)
            row.policy_id, row.mode, row.mx = policy.policy_id, policy.mode, list(policy.mx)
            row.max_age, row.fetched_at = policy.max_age, policy.fetched_at
            row.expires_at, row.refresh_failed_at = policy.expires_at, None

    def note_sts_refresh_failed(self, domain: str, now: datetime) -> None:
        with self._writing() as session:
            session.execute(update(MtaStsPolicyRow).where(MtaStsPolicyRow.domain == domain)
                            .values(refresh_failed_at=now))

    # -- TLS-RPT ------------------------------------------------------------------------

    def add_session_counts(self, day: str, counts: Mapping[SessionKey, int]) -> None:
        """Add ``counts`` to the day's counters (one transaction)."""
        with self._writing() as session:
            for key, count in counts.items():
                _add_count(session, day, key, count)

    def session_counts(self, domain: str, day: str) -> list[SessionCount]:
        with self._readers.begin() as session:
            rows = session.scalars(select(TlsReportCount).where(
                TlsReportCount.policy_domain == domain, TlsReportCount.day == day)
                .order_by(TlsReportCount.id)).all()
            return [SessionCount(SessionKey(r.policy_domain, r.policy_type, r.policy_id,
                                            r.result_type, r.receiving_mx), r.count)
                    for r in rows]

    def unreported_days(self, before_day: str) -> list[tuple[str, str]]:
        """(policy domain, day) with counts before ``before_day`` and no report yet."""
        with self._readers.begin() as session:
            counted = {(domain, day) for domain, day in session.execute(
                select(TlsReportCount.policy_domain, TlsReportCount.day)
                .where(TlsReportCount.day < before_day).distinct())}
            sent = {(domain, day) for domain, day in session.execute(
                select(TlsReportSent.policy_domain, TlsReportSent.day)
                .where(TlsReportSent.day < before_day))}
        return sorted(counted - sent)

    def claim_report(self, domain: str, day: str, now: datetime) -> bool:
        """Mark the day's report of ``domain`` as sent; False if it already was (another
        node, or an earlier run): at most one report per domain and day."""
        try:
            with self._writing() as session:
                session.add(TlsReportSent(policy_domain=domain, day=day, sent_at=now))
        except IntegrityError:
            return False
        return True


def _add_count(session: Session, day: str, key: SessionKey, count: int) -> None:
    where = (TlsReportCount.day == day, TlsReportCount.policy_domain == key.policy_domain,
             TlsReportCount.policy_type == key.policy_type,
             TlsReportCount.policy_id == key.policy_id,
             TlsReportCount.result_type == key.result_type,
             TlsReportCount.receiving_mx == key.receiving_mx)
    changed = session.execute(update(TlsReportCount).where(*where)
                              .values(count=TlsReportCount.count + count))
    if getattr(changed, "rowcount", 0):
        return
    session.add(TlsReportCount(day=day, policy_domain=key.policy_domain,
                               policy_type=key.policy_type, policy_id=key.policy_id,
                               result_type=key.result_type, receiving_mx=key.receiving_mx,
                               count=count))
    session.flush()
