"""Incidents: a destination domain refusing our mail for a reason on our side.

A bounce whose reason is a sender-side problem (our IP blocklisted, SPF/DKIM/DMARC failing,
no reverse DNS, our sender address rejected, rate limits: :class:`ReasonGroup.SENDER`)
says nothing about the recipient, so it suppresses nobody. It records an incident for the
recipient's domain instead (reason, first and last seen, count). While the incident lasts,
*marketing* mail to the domain waits with a back-off that doubles with each further such
bounce (``[feedback] incident_hold_base_seconds`` up to ``incident_hold_max_seconds``);
treatment and operations mail keeps its normal schedule, so appointment reminders are still
attempted. The incident ends when an admin clears it or a delivery to the domain succeeds;
both are audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from phigate.audit.log import SYSTEM, Actor, AuditLog
from phigate.config import FeedbackSettings
from phigate.queue.db import read_only
from phigate.queue.policy_models import BounceIncident

BASE_HOLD = timedelta(minutes=15)
MAX_HOLD = timedelta(hours=24)


@dataclass(frozen=True)
class IncidentEntry:
    domain: str
    reason: str
    first_seen: datetime
    last_seen: datetime
    count: int
    hold_until: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"domain": self.domain, "reason": self.reason,
                "first_seen": self.first_seen.isoformat(),
                "last_seen": self.last_seen.isoformat(), "count": self.count,
                "hold_until": self.hold_until.isoformat()}


def domain_of(address: str) -> str | None:
    domain = address.rpartition("@")[2].strip().strip(">").lower().rstrip(".")
    return domain or None


def hold_for(count: int, *, base: timedelta = BASE_HOLD, cap: timedelta = MAX_HOLD
             ) -> timedelta:
    """The back-off after the ``count``-th sender-side bounce from one domain."""
    return min(base * (2 ** min(max(count, 1) - 1, 20)), cap)


class IncidentStore:
    def __init__(self, engine: Engine, audit: AuditLog, *, base: timedelta = BASE_HOLD,
                 cap: timedelta = MAX_HOLD) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._readers = sessionmaker(read_only(engine), expire_on_commit=False)
        self._audit = audit
        self._base, self._cap = base, cap

    @classmethod
    def configured(cls, engine: Engine, audit: AuditLog, settings: FeedbackSettings
                   ) -> IncidentStore:
        """With the back-off of ``[feedback] incident_hold_base_seconds`` and
        ``incident_hold_max_seconds``."""
        return cls(engine, audit, base=timedelta(seconds=settings.incident_hold_base_seconds),
                   cap=timedelta(seconds=settings.incident_hold_max_seconds))

    def record(self, session: Session, domain: str, reason: str, *, now: datetime) -> int:
        """Count one sender-side bounce from ``domain`` (in the caller's transaction);
        returns the incident's count."""
        domain = domain.lower()
        row = session.get(BounceIncident, domain, with_for_update=True)
        if row is None:
            row = BounceIncident(domain=domain, reason=reason, first_seen=now, last_seen=now,
                                 count=0, hold_until=now)
            session.add(row)
            self._audit.record(SYSTEM, "incident.open", session=session,
                               detail={"domain": domain, "reason": reason})
        row.count += 1
        row.reason, row.last_seen = reason, now
        row.hold_until = now + hold_for(row.count, base=self._base, cap=self._cap)
        return row.count

    def record_now(self, domain: str, reason: str, *, now: datetime) -> int:
        with self._sessions.begin() as session:
            return self.record(session, domain, reason, now=now)

    def resolve(self, domain: str, *, actor: Actor = SYSTEM, why: str = "delivered") -> bool:
        """End the incident of ``domain`` (an admin cleared it, or a delivery succeeded)."""
        domain = domain.lower()
        with self._sessions.begin() as session:
            row = session.get(BounceIncident, domain, with_for_update=True)
            if row is None:
                return False
            detail = {"domain": domain, "reason": row.reason, "count": row.count,
                      "first_seen": row.first_seen.isoformat(), "why": why}
            session.execute(delete(BounceIncident).where(BounceIncident.domain == domain))
            self._audit.record(actor, "incident.clear", session=session, detail=detail)
        return True

    def held_until(self, domain: str, *, now: datetime) -> datetime | None:
        """Until when marketing mail to ``domain`` waits, or None."""
        with self._readers.begin() as session:
            row = session.get(BounceIncident, domain.lower())
            if row is None or row.hold_until <= now:
                return None
            return row.hold_until

    def active_domains(self, domains: set[str]) -> set[str]:
        if not domains:
            return set()
        with self._readers.begin() as session:
            rows = session.scalars(select(BounceIncident.domain)
                                   .where(BounceIncident.domain.in_(sorted(domains))))
            return set(rows)

    def entries(self) -> list[IncidentEntry]:
        with self._readers.begin() as session:
            return [IncidentEntry(r.domain, r.reason, r.first_seen, r.last_seen, r.count,
                                  r.hold_until)
                    for r in session.scalars(select(BounceIncident)
                                             .order_by(BounceIncident.last_seen.desc()))]

    def counts(self) -> dict[str, int]:
        """Open incidents per reason: the ``phigate_bounce_incidents`` gauge (no domain or
        address in any label)."""
        with self._readers.begin() as session:
            rows = session.execute(select(BounceIncident.reason, func.count())
                                   .group_by(BounceIncident.reason))
            return {reason: int(count) for reason, count in rows}
