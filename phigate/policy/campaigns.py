"""Marketing campaigns: approval, counters, and the automatic pause on complaints.

A marketing message names its campaign in ``X-Phigate-Campaign``. Until an admin approves
the campaign its messages wait in ``awaiting-approval`` (the queue never hands them to
delivery). Approval records who approved, from which address and when, in the audit log,
and releases the waiting messages in the same transaction.

Accepted, delivered, deferred and bounced counts are read from the queue's recipients (no
second bookkeeping to drift); complaints, unsubscribes and bounces reported after delivery
are counted on the campaign by the feedback listener. When complaints per delivered
recipient pass ``[policy] campaign_complaint_threshold`` (Gmail's 0.3%) after at least
``campaign_min_volume`` deliveries, the campaign is paused: its queued messages are held,
an audit entry is written and a warning logged (the alert; Prometheus sees the ratio too).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, case, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from phigate.audit.log import SYSTEM, Actor, AuditLog
from phigate.clock import utcnow
from phigate.config import PolicySettings
from phigate.errors import UserError
from phigate.observability.collectors import CampaignSnapshot
from phigate.observability.logs import log_event
from phigate.queue import transitions
from phigate.queue.db import read_only
from phigate.queue.models import Message, MessageState, Recipient, RecipientState
from phigate.queue.policy_models import Campaign, CampaignState

log = logging.getLogger("phigate.campaigns")

#: What a campaign id may look like: it ends up in tokens, metric labels and commands.
CAMPAIGN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")
#: ``hold_reason`` of messages held by a campaign pause (approval releases exactly those).
PAUSED_PREFIX = "campaign paused"
COUNTERS = ("complaints", "unsubscribes", "feedback_bounces")


def valid_campaign_id(value: str) -> bool:
    return bool(CAMPAIGN_ID.match(value))


@dataclass(frozen=True)
class CampaignView:
    id: str
    state: str
    accepted: int
    delivered: int
    deferred: int
    bounced: int
    complaints: int
    unsubscribes: int
    awaiting_approval: int
    approved_by: str | None
    approved_ip: str | None
    approved_at: datetime | None
    pause_reason: str | None

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.delivered if self.delivered else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "state": self.state, "accepted": self.accepted,
            "delivered": self.delivered, "deferred": self.deferred, "bounced": self.bounced,
            "complaints": self.complaints, "unsubscribes": self.unsubscribes,
            "complaint_rate": round(self.complaint_rate, 6),
            "awaiting_approval": self.awaiting_approval, "approved_by": self.approved_by,
            "approved_ip": self.approved_ip,
            "approved_at": self.approved_at.isoformat() if self.approved_at else None,
            "pause_reason": self.pause_reason,
        }


class CampaignStore:
    def __init__(self, engine: Engine, audit: AuditLog, settings: PolicySettings) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # Lookups asked per recipient and message: they must not queue for the write lock.
        self._readers = sessionmaker(read_only(engine), expire_on_commit=False)
        self._audit = audit
        self._settings = settings

    def state_of(self, campaign_id: str) -> CampaignState:
        """The campaign's state; a campaign nobody approved yet is ``pending``."""
        with self._readers.begin() as session:
            state = session.scalar(select(Campaign.state).where(Campaign.id == campaign_id))
        return CampaignState(state) if state is not None else CampaignState.PENDING

    def approve(self, campaign_id: str, *, actor: Actor, now: datetime | None = None
                ) -> list[str]:
        """Approve (or resume) the campaign and release its waiting messages; audited.

        Returns the ids of the messages released (the caller tells their senders). A
        campaign may be approved before its first message arrives.
        """
        if not valid_campaign_id(campaign_id):
            raise UserError(f"not a campaign id: {campaign_id!r}")
        now = now or utcnow()
        with self._sessions.begin() as session:
            row = self._row(session, campaign_id, now)
            previous = str(row.state)
            row.state = CampaignState.APPROVED
            row.approved_by, row.approved_ip, row.approved_at = actor.name, actor.ip, now
            row.paused_at = row.pause_reason = None
            waiting = transitions.set_message_state(
                session,
                (Message.campaign_id == campaign_id)
                & ((Message.state == MessageState.AWAITING_APPROVAL)
                   | ((Message.state == MessageState.HELD)
                      & Message.hold_reason.startswith(PAUSED_PREFIX))),
                MessageState.ACTIVE)
            # every copy may have been cancelled meanwhile
            transitions.close_if_done(session, waiting, now)
            row.audit_hash = self._audit.record(
                actor, "campaign.approve", session=session,
                detail={"campaign": campaign_id, "approved_by": actor.name,
                        "approved_ip": actor.ip, "approved_at": now.isoformat(),
                        "previous_state": previous, "released_messages": len(waiting)},
            )
        log_event(log, "campaign_approved", campaign=campaign_id, released=len(waiting))
        return waiting

    def pause(self, campaign_id: str, reason: str, *, actor: Actor = SYSTEM,
              now: datetime | None = None, session: Session | None = None) -> list[str]:
        """Pause the campaign and hold its active messages; returns the ids held."""
        now = now or utcnow()
        if session is None:
            with self._sessions.begin() as own:
                return self._pause(own, campaign_id, reason, actor, now)
        return self._pause(session, campaign_id, reason, actor, now)

    def _pause(self, session: Session, campaign_id: str, reason: str, actor: Actor,
               now: datetime) -> list[str]:
        row = self._row(session, campaign_id, now)
        row.state = CampaignState.PAUSED
        row.paused_at, row.pause_reason = now, reason
        held = transitions.set_message_state(
            session,
            (Message.campaign_id == campaign_id) & (Message.state == MessageState.ACTIVE),
            MessageState.HELD, reason=f"{PAUSED_PREFIX}: {reason}")
        self._audit.record(actor, "campaign.pause", session=session,
                           detail={"campaign": campaign_id, "reason": reason,
                                   "held_messages": len(held)})
        log_event(log, "campaign_paused", level=logging.WARNING, campaign=campaign_id,
                  reason=reason, held=len(held))
        return held

    def count(self, session: Session, campaign_id: str, counter: str, *, now: datetime
              ) -> None:
        """Add one to a feedback counter of the campaign (inside the caller's transaction)."""
        if counter not in COUNTERS:
            raise ValueError(f"unknown campaign counter {counter!r}")
        column = getattr(Campaign, counter)
        changed = session.execute(
            update(Campaign).where(Campaign.id == campaign_id).values({column: column + 1})
        ).rowcount  # type: ignore[attr-defined]
        if not changed:
            row = self._row(session, campaign_id, now)
            setattr(row, counter, getattr(row, counter) + 1)

    def check_complaint_rate(self, session: Session, campaign_id: str, *, now: datetime
                             ) -> list[str] | None:
        """Pause the campaign if its complaint rate passed the threshold: the ids of the
        messages the pause held, or None if the campaign was not paused."""
        row = session.get(Campaign, campaign_id)
        if row is None or row.state == CampaignState.PAUSED:
            return None
        delivered = session.scalar(
            select(func.count()).select_from(Recipient)
            .join(Message, Message.id == Recipient.message_id)
            .where(Message.campaign_id == campaign_id,
                   Recipient.state == RecipientState.DELIVERED)
        ) or 0
        if delivered < max(self._settings.campaign_min_volume, 1):
            return None
        rate = row.complaints / delivered
        if rate <= self._settings.campaign_complaint_threshold:
            return None
        return self._pause(session, campaign_id,
                           f"complaint rate {rate:.2%} over "
                           f"{self._settings.campaign_complaint_threshold:.2%} "
                           f"({row.complaints} complaints, {delivered} delivered)",
                           SYSTEM, now)

    def views(self, campaign_id: str | None = None) -> list[CampaignView]:
        """Every campaign with its counters: those with a row and those only seen in mail."""
        counts = select(
            Message.campaign_id,
            func.count(Recipient.id),
            func.sum(case((Recipient.state == RecipientState.DELIVERED, 1), else_=0)),
            func.sum(case((Recipient.state == RecipientState.DEFERRED, 1), else_=0)),
            func.sum(case((Recipient.state.in_([RecipientState.BOUNCED,
                                                RecipientState.EXPIRED]), 1), else_=0)),
            func.sum(case((Message.state == MessageState.AWAITING_APPROVAL, 1), else_=0)),
        ).join(Recipient, Recipient.message_id == Message.id).where(
            Message.campaign_id.is_not(None),
            # A cancelled recipient (suppressed, deleted by an admin) was never sent to.
            Recipient.state != RecipientState.CANCELLED,
        ).group_by(Message.campaign_id)
        rows_query = select(Campaign)
        if campaign_id is not None:
            counts = counts.where(Message.campaign_id == campaign_id)
            rows_query = rows_query.where(Campaign.id == campaign_id)
        with self._sessions.begin() as session:
            by_id = {cid: [int(v or 0) for v in values]
                     for cid, *values in session.execute(counts)}
            rows = {row.id: row for row in session.scalars(rows_query)}
        views = []
        for cid in sorted(set(by_id) | set(rows)):
            accepted, delivered, deferred, bounced, waiting = by_id.get(cid, [0] * 5)
            row = rows.get(cid)
            views.append(CampaignView(
                id=cid, state=str(row.state) if row else CampaignState.PENDING.value,
                accepted=accepted, delivered=delivered, deferred=deferred,
                bounced=bounced + (row.feedback_bounces if row else 0),
                complaints=row.complaints if row else 0,
                unsubscribes=row.unsubscribes if row else 0,
                awaiting_approval=waiting,
                approved_by=row.approved_by if row else None,
                approved_ip=row.approved_ip if row else None,
                approved_at=row.approved_at if row else None,
                pause_reason=row.pause_reason if row else None,
            ))
        return views

    def snapshots(self) -> list[CampaignSnapshot]:
        """Approved or paused campaigns for the ``phigate_campaign_*`` gauges."""
        return [CampaignSnapshot(v.id, v.delivered, v.complaints) for v in self.views()
                if v.state != CampaignState.PENDING]

    def _row(self, session: Session, campaign_id: str, now: datetime) -> Campaign:
        row = session.get(Campaign, campaign_id, with_for_update=True)
        if row is None:
            row = Campaign(id=campaign_id, state=CampaignState.PENDING, created_at=now,
                           complaints=0, unsubscribes=0, feedback_bounces=0)
            session.add(row)
            session.flush()
        return row
