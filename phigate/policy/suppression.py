"""The scoped suppression list.

Scope ``marketing`` (unsubscribes, complaints) stops marketing only: appointment reminders
and results still go out. Scope ``all`` (hard bounces, repeated soft bounces, an admin)
stops everything to the address. Adding a suppression cancels the address's queued mail in
that scope in the same transaction, and writes one audit entry saying what it cancelled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from phigate.audit.log import Actor, AuditLog
from phigate.clock import utcnow
from phigate.errors import UserError
from phigate.observability.metrics import METRICS
from phigate.policy.queue_effects import cancel_pending, normalize_address
from phigate.queue.db import one_statement_reads, read_only
from phigate.queue.models import MessageClass
from phigate.queue.policy_models import Suppression, SuppressionScope

SCOPES = tuple(scope.value for scope in SuppressionScope)
#: What can cause a suppression (stored in ``kind``; the metric label set).
KINDS = ("hard_bounce", "soft_bounces", "complaint", "unsubscribe", "manual")


@dataclass(frozen=True)
class SuppressionEntry:
    address: str
    scope: str
    kind: str
    reason: str
    source: str
    campaign_id: str | None
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"address": self.address, "scope": self.scope, "kind": self.kind,
                "reason": self.reason, "source": self.source, "campaign": self.campaign_id,
                "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class AddResult:
    #: False when the address was already suppressed for this scope (or for ``all``).
    added: bool
    #: Messages whose pending copies to the address were cancelled.
    cancelled_messages: tuple[str, ...] = ()


_SCOPES_FOR = select(Suppression.address, Suppression.scope).where(
    Suppression.address.in_(bindparam("addresses", expanding=True)))


class SuppressionStore:
    def __init__(self, engine: Engine, audit: AuditLog) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # Lookups asked per recipient and message: they must not queue for the write lock.
        self._read_engine = read_only(engine)
        self._readers = sessionmaker(self._read_engine, expire_on_commit=False)
        self._lookups = one_statement_reads(engine)
        self._audit = audit

    def add(
        self,
        address: str,
        scope: str,
        *,
        kind: str,
        reason: str,
        source: str,
        actor: Actor,
        campaign_id: str | None = None,
        now: datetime | None = None,
        session: Session | None = None,
    ) -> AddResult:
        """Suppress ``address`` for ``scope``; cancel its queued mail in scope; audit it."""
        if scope not in SCOPES:
            raise UserError(f"unknown scope {scope!r}: use {' or '.join(SCOPES)}")
        if kind not in KINDS:
            raise ValueError(f"unknown suppression kind {kind!r}")
        address = normalize_address(address)
        if "@" not in address:
            raise UserError("not an email address")
        now = now or utcnow()
        if session is None:
            with self._sessions.begin() as own:
                return self._add(own, address, scope, kind, reason, source, actor,
                                 campaign_id, now)
        return self._add(session, address, scope, kind, reason, source, actor, campaign_id, now)

    def _add(
        self, session: Session, address: str, scope: str, kind: str, reason: str, source: str,
        actor: Actor, campaign_id: str | None, now: datetime,
    ) -> AddResult:
        existing = set(session.scalars(
            select(Suppression.scope).where(Suppression.address == address)
        ))
        # An "all" entry covers marketing already; a second row would only confuse the list.
        if scope in existing or SuppressionScope.ALL in existing:
            return AddResult(added=False)
        session.add(Suppression(address=address, scope=SuppressionScope(scope), kind=kind,
                                reason=reason, source=source, campaign_id=campaign_id,
                                created_at=now))
        cancelled = cancel_pending(
            session, address, now=now, reason=f"cancelled: suppressed ({kind})",
            message_class=MessageClass.MARKETING if scope == SuppressionScope.MARKETING else None,
        )
        self._audit.record(
            actor, "suppression.add", session=session,
            detail={"address": address, "scope": scope, "kind": kind, "reason": reason,
                    "source": source, "campaign": campaign_id,
                    "cancelled_messages": cancelled},
        )
        # Counted before the commit: a failed commit raises to the caller, who retries.
        METRICS.record_suppression_added(scope, kind)
        return AddResult(added=True, cancelled_messages=tuple(cancelled))

    def remove(self, address: str, *, actor: Actor, scope: str | None = None,
               reason: str | None = None) -> int:
        """Lift the address's suppressions (of one scope, or all); returns how many.

        ``reason`` (the admin console asks for one) goes into the audit entry.
        """
        address = normalize_address(address)
        with self._sessions.begin() as session:
            query = delete(Suppression).where(Suppression.address == address)
            if scope is not None:
                query = query.where(Suppression.scope == SuppressionScope(scope))
            removed = int(session.execute(query).rowcount)  # type: ignore[attr-defined]
            if removed:
                self._audit.record(actor, "suppression.remove", session=session,
                                   detail={"address": address, "scope": scope or "any",
                                           "removed": removed}
                                   | ({"reason": reason} if reason else {}))
        return removed

    def scopes_for(self, addresses: Iterable[str]) -> dict[str, set[str]]:
        """The suppressed scopes of each given address (absent: not suppressed)."""
        wanted = sorted({normalize_address(a) for a in addresses})
        if not wanted:
            return {}
        found: dict[str, set[str]] = {}
        # A connection, not an ORM session, and a statement built once: asked at RCPT for
        # every recipient, the session's set-up cost more CPU than the indexed lookup.
        with self._lookups.connect() as connection:
            for address, scope in connection.execute(_SCOPES_FOR, {"addresses": wanted}):
                found.setdefault(address, set()).add(str(scope))
        return found

    def entries(self, *, scope: str | None = None, address: str | None = None
                ) -> list[SuppressionEntry]:
        query = select(Suppression).order_by(Suppression.created_at, Suppression.id)
        if scope is not None:
            query = query.where(Suppression.scope == SuppressionScope(scope))
        if address is not None:
            query = query.where(Suppression.address == normalize_address(address))
        with self._sessions.begin() as session:
            return [
                SuppressionEntry(row.address, str(row.scope), row.kind, row.reason, row.source,
                                 row.campaign_id, row.created_at)
                for row in session.scalars(query)
            ]

    def counts(self) -> dict[tuple[str, str], int]:
        """Active suppressions per (scope, kind): the ``phigate_suppressions`` gauge."""
        with self._sessions.begin() as session:
            rows = session.execute(
                select(Suppression.scope, Suppression.kind, func.count())
                .group_by(Suppression.scope, Suppression.kind)
            )
            return {(str(scope), kind): int(count) for scope, kind, count in rows}
