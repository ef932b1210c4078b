"""Lifting the suppressions bounces created (``phigate suppress lift --source bounce``).

After an incident on our side (our IP on a blocklist, a broken DKIM key) bounces may have
suppressed addresses that are fine. This finds the suppressions that bounce feedback made
(kinds ``hard_bounce`` and ``soft_bounces``, never a complaint, an unsubscribe or an admin's
entry) in a time window, optionally for one domain or one bounce category, and lifts them
one by one, each with its own audit entry. The soft-bounce count of a lifted address is
reset too, so the next soft bounce does not suppress it again at once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import sessionmaker

from phigate.audit.log import Actor, AuditLog
from phigate.policy.suppression import SuppressionEntry
from phigate.queue.policy_models import SoftBounceCount, Suppression

#: The suppression kinds bounce feedback creates: the only ones ``lift`` touches.
BOUNCE_KINDS = ("hard_bounce", "soft_bounces")


def bounce_suppressions(engine: Engine, *, since: datetime, until: datetime | None = None,
                        domain: str | None = None, category: str | None = None
                        ) -> list[SuppressionEntry]:
    """Suppressions created by bounces between ``since`` and ``until`` (inclusive)."""
    query = (select(Suppression).where(Suppression.kind.in_(BOUNCE_KINDS))
             .where(Suppression.created_at >= since)
             .order_by(Suppression.created_at, Suppression.id))
    if until is not None:
        query = query.where(Suppression.created_at <= until)
    if domain is not None:
        query = query.where(Suppression.address.like(f"%@{domain.strip().lower()}"))
    with sessionmaker(engine)() as session:
        rows = list(session.scalars(query))
        entries = [SuppressionEntry(row.address, str(row.scope), row.kind, row.reason,
                                    row.source, row.campaign_id, row.created_at)
                   for row in rows]
    if category is not None:
        wanted = category.strip().lower()
        entries = [entry for entry in entries if wanted in entry.reason.lower()]
    return entries


def lift(engine: Engine, audit: AuditLog, entries: list[SuppressionEntry], *,
         actor: Actor) -> int:
    """Lift each of ``entries`` (only bounce kinds), one audit entry each; returns how many."""
    lifted = 0
    sessions = sessionmaker(engine)
    for entry in entries:
        if entry.kind not in BOUNCE_KINDS:
            continue
        with sessions.begin() as session:
            removed = session.execute(
                delete(Suppression).where(Suppression.address == entry.address)
                .where(Suppression.scope == entry.scope)
                .where(Suppression.kind.in_(BOUNCE_KINDS))
            ).rowcount  # type: ignore[attr-defined]
            if not removed:
                continue
            session.execute(delete(SoftBounceCount)
                            .where(SoftBounceCount.address == entry.address))
            audit.record(actor, "suppression.lift", session=session,
                         detail={"address": entry.address, "scope": entry.scope,
                                 "kind": entry.kind, "reason": entry.reason,
                                 "created_at": entry.created_at.isoformat(),
                                 "source": "bounce"})
            lifted += 1
    return lifted
