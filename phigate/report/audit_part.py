"""The report's audit sections: admin actions, PHI reveals, chain verification, retention."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from phigate.admin.retention import PURGE_ACTION
from phigate.audit.log import AuditLog
from phigate.audit.verify import verify_chain
from phigate.queue.models import AuditEvent

_SYSTEM_ACTORS = ("system", "phigate")


def audit_section(session: Session, start: datetime, end: datetime,
                  reveal_actions: tuple[str, ...]) -> dict[str, Any]:
    by_action: Counter[str] = Counter()
    reveals_by_admin: Counter[str] = Counter()
    admins: set[str] = set()
    rows = session.execute(select(AuditEvent.actor, AuditEvent.action)
                           .where(AuditEvent.at >= start, AuditEvent.at < end))
    for actor, action in rows:
        by_action[action] += 1
        if actor not in _SYSTEM_ACTORS:
            admins.add(actor)
        if action in reveal_actions:
            reveals_by_admin[actor] += 1
    return {"entries": sum(by_action.values()), "by_action": dict(sorted(by_action.items())),
            "admins": sorted(admins), "phi_reveals": sum(reveals_by_admin.values()),
            "phi_reveals_by_admin": dict(sorted(reveals_by_admin.items()))}


def chain_section(session: Session, audit: AuditLog | None = None) -> dict[str, Any]:
    """The chain check, with the audit key and newest checkpoint when ``audit`` has them."""
    checkpoint = audit.checkpoints.newest() if audit and audit.checkpoints else None
    report = verify_chain(session, key=audit.key if audit else None, checkpoint=checkpoint)
    return {"ok": report.ok, "entries_checked": report.checked, "anchored": report.anchored,
            "broken_at_entry": report.broken.entry_id if report.broken else None,
            "problem": report.broken.problem if report.broken else None}


def retention_section(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    runs = session.execute(select(AuditEvent.at, AuditEvent.detail).where(
        AuditEvent.action == PURGE_ACTION, AuditEvent.at >= start, AuditEvent.at < end)
        .order_by(AuditEvent.id)).all()
    totals: Counter[str] = Counter()
    for _, detail in runs:
        for key in ("bodies_destroyed", "messages_removed", "audit_entries_removed"):
            totals[key] += int((detail or {}).get(key, 0))
    return {"runs": len(runs),
            "last_run": runs[-1][0].isoformat(timespec="seconds") if runs else None,
            **{key: totals.get(key, 0) for key in ("bodies_destroyed", "messages_removed",
                                                    "audit_entries_removed")}}
