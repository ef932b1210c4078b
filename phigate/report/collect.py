"""Gather the month's figures from the queue, the policy tables and the audit log.

Only counts and staff-side facts leave here (campaign ids, approvers, admin account names,
destination domains of incidents): never a patient address, subject or body.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from phigate.audit.log import AuditLog
from phigate.queue.models import Attempt, AuditEvent, Message, MessageState
from phigate.queue.policy_models import BounceIncident, Campaign, CampaignOpens, Suppression
from phigate.report.audit_part import audit_section, chain_section, retention_section

REVEAL_ACTIONS = ("message.reveal", "message.preview")
_OUTCOME_BY_ACTION = {"queue.release": "released", "quarantine.reject": "rejected",
                      "queue.bounce": "rejected", "queue.delete": "deleted"}


@dataclass(frozen=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        try:
            moment = datetime.strptime(text, "%Y-%m")
        except ValueError:
            raise ValueError(f"not a month (YYYY-MM): {text!r}") from None
        return cls(moment.year, moment.month)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return datetime(year, month, 1, tzinfo=UTC)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def collect(engine: Engine, month: Month, *, generated_at: datetime,
            audit: AuditLog | None = None) -> dict[str, Any]:
    with Session(engine) as session:
        messages = _messages(session, month)
        return {
            "month": str(month), "generated_at": generated_at.isoformat(timespec="seconds"),
            "messages": messages["summary"],
            "phi_tls": _phi_tls(session, month),
            "quarantine": _quarantine(session, messages["quarantined"]),
            "suppressions": _suppressions(session, month),
            "campaigns": _campaigns(session, month),
            "incidents": _incidents(session, month),
            "audit": audit_section(session, month.start, month.end, REVEAL_ACTIONS),
            "audit_chain": chain_section(session, audit),
            "retention": retention_section(session, month.start, month.end),
        }


def _in_month(column: Any, month: Month) -> Any:
    return (column >= month.start) & (column < month.end)


def _messages(session: Session, month: Month) -> dict[str, Any]:
    by_class: Counter[str] = Counter()
    phi_by_class: Counter[str] = Counter()
    quarantined: dict[str, str] = {}
    rows = session.execute(select(Message.id, Message.message_class, Message.phi_verdict,
                                  Message.rule_hits).where(_in_month(Message.created_at, month)))
    for message_id, message_class, verdict, hits in rows:
        by_class[str(message_class)] += 1
        if verdict == "phi":
            phi_by_class[str(message_class)] += 1
        for hit in hits or []:
            if hit.get("action") == "quarantine":
                quarantined[message_id] = str(hit.get("rule") or "unknown")
                break
    total = sum(by_class.values())
    phi = sum(phi_by_class.values())
    return {"summary": {"total": total, "by_class": dict(sorted(by_class.items())),
                        "with_phi": phi, "with_phi_by_class": dict(sorted(phi_by_class.items())),
                        "phi_share": round(phi / total, 4) if total else 0.0},
            "quarantined": quarantined}


def tls_level(policy: str | None, verified: bool | None, version: str | None) -> str:
    if policy in ("dane", "mta-sts"):
        return str(policy)
    if verified:
        return "verified"
    return "encrypted" if version else "none"


def _phi_tls(session: Session, month: Month) -> dict[str, int]:
    levels: Counter[str] = Counter()
    rows = session.execute(
        select(Attempt.tls_policy, Attempt.cert_verified, Attempt.tls_version)
        .join(Message, Message.id == Attempt.message_id)
        .where(Message.phi_verdict == "phi", _in_month(Attempt.started_at, month),
               Attempt.code >= 200, Attempt.code < 300))
    for policy, verified, version in rows:
        levels[tls_level(policy, verified, version)] += 1
    return {level: levels.get(level, 0) for level in ("dane", "mta-sts", "verified",
                                                      "encrypted", "none")}


def _quarantine(session: Session, quarantined: dict[str, str]) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    by_reason: Counter[str] = Counter(quarantined.values())
    decided: dict[str, str] = {}
    ids = list(quarantined)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for message_id, action in session.execute(
                select(AuditEvent.message_id, AuditEvent.action)
                .where(AuditEvent.message_id.in_(chunk),
                       AuditEvent.action.in_(tuple(_OUTCOME_BY_ACTION)))
                .order_by(AuditEvent.id)):
            decided[str(message_id)] = _OUTCOME_BY_ACTION[action]
        still = session.scalars(select(Message.id).where(
            Message.id.in_(chunk), Message.state == MessageState.QUARANTINED))
        for message_id in still:
            decided.setdefault(message_id, "still held")
    for message_id in ids:
        outcomes[decided.get(message_id, "other")] += 1
    return {"total": len(ids), "by_reason": dict(sorted(by_reason.items())),
            "outcomes": dict(sorted(outcomes.items()))}


def _suppressions(session: Session, month: Month) -> dict[str, Any]:
    rows = session.execute(select(Suppression.kind, Suppression.scope, func.count())
                           .where(_in_month(Suppression.created_at, month))
                           .group_by(Suppression.kind, Suppression.scope))
    by_source = {f"{kind} ({scope})": int(count) for kind, scope, count in rows}
    return {"added": sum(by_source.values()), "by_source": dict(sorted(by_source.items()))}


def _campaigns(session: Session, month: Month) -> list[dict[str, Any]]:
    sent = dict(session.execute(
        select(Message.campaign_id, func.count()).where(
            Message.campaign_id.is_not(None), _in_month(Message.created_at, month))
        .group_by(Message.campaign_id)).all())
    rows = session.scalars(select(Campaign).where(
        Campaign.id.in_(list(sent)) | _in_month(Campaign.approved_at, month)))
    return [{"id": row.id, "state": str(row.state), "messages": int(sent.get(row.id, 0)),
             "approved_by": row.approved_by, "approved_ip": row.approved_ip,
             "approved_at": row.approved_at.isoformat(timespec="seconds")
             if row.approved_at else None,
             "complaints": row.complaints, "unsubscribes": row.unsubscribes,
             "estimated_opens": _opens(session, row.id)}
            for row in sorted(rows, key=lambda r: r.id)]


def _opens(session: Session, campaign_id: str) -> dict[str, Any] | None:
    """A tracked campaign's aggregate open counts (estimated; never per recipient)."""
    row = session.get(CampaignOpens, campaign_id)
    if row is None:
        return None
    return {"unique_opens": row.unique_opens, "proxy_fetches": row.proxy_fetches,
            "tracking_closed": row.hash_key is None}


def _incidents(session: Session, month: Month) -> list[dict[str, Any]]:
    rows = session.scalars(select(BounceIncident).where(
        BounceIncident.first_seen < month.end, BounceIncident.last_seen >= month.start))
    return [{"domain": row.domain, "reason": row.reason, "bounces": row.count,
             "first_seen": row.first_seen.isoformat(timespec="seconds"),
             "last_seen": row.last_seen.isoformat(timespec="seconds")}
            for row in sorted(rows, key=lambda r: r.first_seen)]
