"""Figures for the dashboard and for the Prometheus store gauges, straight from the store.

Every figure is one aggregate query (counts grouped in SQL), so a refresh costs a few
milliseconds on a queue of 100,000 recipients and the TUI can poll it from a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from phigate.admin.domain_rates import domain_complaint_rates
from phigate.admin.timebuckets import recent_bucket
from phigate.clock import utcnow
from phigate.mta.submission.auth import Lockout
from phigate.observability.collectors import StoreSnapshot
from phigate.queue.models import (
    PENDING_RECIPIENT_STATES,
    Attempt,
    DeferReason,
    Message,
    MessageState,
    Recipient,
    RecipientState,
)
from phigate.queue.policy_models import BounceIncident
from phigate.queue.store import SqlQueueStore

SPARK_BUCKETS = 12  # five-minute buckets over the last hour
SPARK_WIDTH = timedelta(minutes=5)
REASON_CHARS = 60


@dataclass(frozen=True)
class DeferralReason:
    domain: str
    code: int | None
    text: str
    recipients: int


@dataclass(frozen=True)
class Dashboard:
    at: datetime
    messages_by_state: dict[str, int]
    recipients_by_state: dict[str, int]
    #: Per five minutes over the last hour, oldest first.
    delivered: list[int]
    deferred: list[int]
    bounced: list[int]
    oldest_pending_age_seconds: float
    quarantined: int
    oldest_quarantined_age_seconds: float
    #: Messages received in the last 24 hours by PHI verdict (none / identifiers / phi).
    phi_verdicts: dict[str, int]
    top_deferrals: list[DeferralReason] = field(default_factory=list)
    tls_deferrals: int = 0
    phi_tls_deferrals: int = 0
    #: Open bounce incidents (domains refusing us for a reason on our side) per reason.
    incidents: dict[str, int] = field(default_factory=dict)
    #: (user, client IP) pairs refused at AUTH now (filled in by the admin service).
    lockouts: list[Lockout] = field(default_factory=list)

    @property
    def pending_recipients(self) -> int:
        return sum(self.recipients_by_state.get(str(s), 0) for s in PENDING_RECIPIENT_STATES)


def _age(now: datetime, oldest: datetime | None) -> float:
    return max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0


def _series(
    session: Session, column: Any, condition: ColumnElement[bool], now: datetime
) -> list[int]:
    since = now - SPARK_WIDTH * SPARK_BUCKETS
    bucket = recent_bucket(column, now, SPARK_WIDTH, SPARK_BUCKETS)
    series = [0] * SPARK_BUCKETS
    query = select(bucket, func.count()).where(condition, column > since)
    for index, count in session.execute(query.group_by(bucket)):
        series[int(index)] = int(count)
    return series


def messages_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(Message.state, func.count()).group_by(Message.state))
    return {str(state): int(count) for state, count in rows}


def pending_recipients_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Recipient.state, func.count())
        .where(Recipient.state.in_(PENDING_RECIPIENT_STATES))
        .group_by(Recipient.state)
    )
    counts = {str(state): 0 for state in PENDING_RECIPIENT_STATES}
    counts.update({str(state): int(count) for state, count in rows})
    return counts


def oldest_pending(session: Session) -> datetime | None:
    return session.scalar(
        select(func.min(Message.created_at))
        .join(Recipient, Recipient.message_id == Message.id)
        # Waiting for delivery only: quarantined, held or unapproved mail waits for a person.
        .where(Recipient.state.in_(PENDING_RECIPIENT_STATES),
               Message.state == MessageState.ACTIVE)
    )


def quarantine_figures(session: Session) -> tuple[int, datetime | None]:
    count, oldest = session.execute(
        select(func.count(), func.min(Message.created_at))
        .where(Message.state == MessageState.QUARANTINED)
    ).one()
    return int(count), oldest


def tls_deferrals(session: Session, *, phi_only: bool) -> int:
    query = (
        select(func.count())
        .select_from(Recipient)
        .where(Recipient.state == RecipientState.DEFERRED,
               Recipient.defer_reason == DeferReason.TLS_REQUIRED)
    )
    if phi_only:
        query = query.join(Message, Message.id == Recipient.message_id).where(
            Message.phi_verdict == "phi")
    return int(session.scalar(query) or 0)


def top_deferrals(session: Session, *, limit: int = 5) -> list[DeferralReason]:
    reason = func.substr(func.coalesce(Recipient.last_text, ""), 1, REASON_CHARS)
    query = (
        select(Recipient.domain, Recipient.last_code, reason, func.count().label("n"))
        .where(Recipient.state == RecipientState.DEFERRED)
        .group_by(Recipient.domain, Recipient.last_code, reason)
        .order_by(func.count().desc(), Recipient.domain)
        .limit(limit)
    )
    return [DeferralReason(domain, code, text, int(n))
            for domain, code, text, n in session.execute(query)]


def incident_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(BounceIncident.reason, func.count())
                           .group_by(BounceIncident.reason))
    return {str(reason): int(count) for reason, count in rows}


def build_dashboard(session: Session, now: datetime) -> Dashboard:
    quarantined, oldest_quarantined = quarantine_figures(session)
    verdicts = session.execute(
        select(Message.phi_verdict, func.count())
        .where(Message.created_at > now - timedelta(days=1))
        .group_by(Message.phi_verdict)
    )
    return Dashboard(
        at=now,
        messages_by_state=messages_by_state(session),
        recipients_by_state=pending_recipients_by_state(session),
        delivered=_series(session, Recipient.final_at,
                          Recipient.state == RecipientState.DELIVERED, now),
        deferred=_series(session, Attempt.started_at,
                         (Attempt.permanent.is_(False))
                         & or_(Attempt.code.is_(None), Attempt.code >= 400), now),
        bounced=_series(session, Recipient.final_at,
                        Recipient.state.in_((RecipientState.BOUNCED, RecipientState.EXPIRED)),
                        now),
        oldest_pending_age_seconds=_age(now, oldest_pending(session)),
        quarantined=quarantined,
        oldest_quarantined_age_seconds=_age(now, oldest_quarantined),
        phi_verdicts={str(v): int(n) for v, n in verdicts},
        top_deferrals=top_deferrals(session),
        tls_deferrals=tls_deferrals(session, phi_only=False),
        phi_tls_deferrals=tls_deferrals(session, phi_only=True),
        incidents=incident_counts(session),
    )


def store_snapshot(store: SqlQueueStore, *, now: datetime | None = None) -> StoreSnapshot:
    """The scrape-time store gauges (``Metrics.register_store_gauges(lambda: ...)``)."""
    now = now or utcnow()
    with store.reading() as session:
        quarantined, oldest_quarantined = quarantine_figures(session)
        return StoreSnapshot(
            messages_by_state=messages_by_state(session),
            recipients_by_state=pending_recipients_by_state(session),
            oldest_pending_age_seconds=_age(now, oldest_pending(session)),
            quarantined=quarantined,
            oldest_quarantined_age_seconds=_age(now, oldest_quarantined),
            phi_waiting_for_tls=tls_deferrals(session, phi_only=True),
            domains=domain_complaint_rates(session, now),
        )
