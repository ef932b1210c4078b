"""Claiming due recipients: leases handed to one delivery owner at a time (the hot read of
delivery, once per scheduler loop). Plain SQL: selecting ORM objects to set two attributes
on each cost more CPU than the database work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Integer, Select, Table, bindparam, or_, select, update
from sqlalchemy.orm import Session

from phigate.queue.models import (
    PENDING_RECIPIENT_STATES,
    Message,
    MessageClass,
    MessageState,
    Recipient,
    RecipientState,
)

_MESSAGES = cast(Table, Message.__table__)
_RECIPIENTS = cast(Table, Recipient.__table__)


@dataclass(frozen=True)
class ClaimedRecipient:
    recipient_id: int
    message_id: str
    address: str
    domain: str
    attempts: int
    phi: bool
    sender: str
    created_at: datetime
    message_class: MessageClass
    campaign_id: str | None
    require_tls: bool = False
    #: The sender was already told this recipient is delayed.
    delay_notified: bool = False


def claim(session: Session, owner: str, *, now: datetime, limit: int,
          lease_until: datetime) -> list[ClaimedRecipient]:
    """Lease up to ``limit`` due recipients to ``owner`` until ``lease_until``, oldest due
    first (in the caller's writing transaction)."""
    # One scan per pending state: with ``state = X`` the (state, next_attempt_at) index
    # yields rows already in due order, so a claim reads ~limit rows whatever the queue's
    # size. (``state IN (queued, deferred)`` made both backends read and sort every due
    # row: 0.3-0.9 s per claim at a million queued recipients.)
    candidates = [
        row for query in _DUE_QUERIES
        for row in session.execute(query, {"now": now, "limit": limit})
    ]
    candidates.sort(key=lambda row: (row.next_attempt_at, row.id))
    chosen = candidates[:limit]
    if chosen:
        # One UPDATE for the claim.
        session.execute(_LEASE, {"ids": [row.id for row in chosen], "owner": owner,
                                 "lease_until": lease_until})
    claimed = [
        ClaimedRecipient(
            recipient_id=row.id,
            message_id=row.message_id,
            address=row.address,
            domain=row.domain,
            attempts=row.attempts,
            phi=row.phi_verdict == "phi",
            sender=row.sender,
            created_at=row.created_at,
            message_class=row.message_class,
            campaign_id=row.campaign_id,
            require_tls=row.require_tls,
            delay_notified=row.delay_notified_at is not None,
        )
        for row in chosen
    ]
    return claimed


def _due_query(state: RecipientState) -> Select[Any]:
    """Due, unleased recipients in one state, of active messages, oldest due first
    (bound: ``now``, ``limit``)."""
    recipients, messages = _RECIPIENTS.c, _MESSAGES.c
    now = bindparam("now", type_=recipients.next_attempt_at.type)
    limit = bindparam("limit", type_=Integer())
    return (
        select(recipients.id, recipients.message_id, recipients.address, recipients.domain,
               recipients.attempts, recipients.next_attempt_at, recipients.delay_notified_at,
               messages.phi_verdict, messages.sender, messages.created_at,
               messages.message_class, messages.campaign_id, messages.require_tls)
        .join(_MESSAGES, messages.id == recipients.message_id)
        .where(
            recipients.state == state,
            recipients.next_attempt_at <= now,
            or_(recipients.lease_until.is_(None), recipients.lease_until < now),
            messages.state == MessageState.ACTIVE,
        )
        .order_by(recipients.next_attempt_at)
        .limit(limit)
        # PostgreSQL: concurrent claimers skip each other's rows instead of waiting (rows
        # locked here but not leased are free again at commit). SQLite ignores this; its
        # BEGIN IMMEDIATE already serialises claimers.
        .with_for_update(of=_RECIPIENTS, skip_locked=True)
    )


#: Built once (the claim runs once per scheduler loop, often for one recipient: building
#: and cache-keying the statements cost more CPU than the database work, issue 16).
_DUE_QUERIES = tuple(_due_query(state) for state in PENDING_RECIPIENT_STATES)
_LEASE = (update(_RECIPIENTS)
          .where(_RECIPIENTS.c.id.in_(bindparam("ids", expanding=True)))
          .values(lease_owner=bindparam("owner", type_=_RECIPIENTS.c.lease_owner.type),
                  lease_until=bindparam("lease_until", type_=_RECIPIENTS.c.lease_until.type)))
