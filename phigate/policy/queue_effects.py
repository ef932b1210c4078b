"""What a suppression or a revoked consent does to mail that is already queued.

An unsubscribe "takes effect immediately" (RFC 8058, and the patient's expectation): the
recipient's pending copies in scope are cancelled in the same transaction that records the
suppression, so no delivery worker can pick them up afterwards. A worker that holds a lease
on one of them at that moment loses it: its later update names a lease it no longer has and
changes nothing (see :mod:`phigate.queue.store`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from phigate.queue.models import (
    PENDING_RECIPIENT_STATES,
    Message,
    MessageState,
    Recipient,
    RecipientState,
)
from phigate.queue.store import domain_of


def normalize_address(address: str) -> str:
    """The form addresses are stored and compared in: no brackets or blanks, lowercased."""
    return address.strip().strip("<>").strip().lower()


def cancel_pending(
    session: Session,
    address: str,
    *,
    now: datetime,
    reason: str,
    message_class: str | None = None,
    phi_only: bool = False,
) -> list[str]:
    """Cancel the address's queued/deferred copies; return the ids of their messages.

    ``message_class`` limits it to one class (``marketing`` for a marketing suppression);
    ``phi_only`` to messages the scanner found PHI in.
    """
    address = normalize_address(address)
    query = (
        select(Recipient)
        .join(Message, Message.id == Recipient.message_id)
        .where(
            Recipient.domain == domain_of(address),  # indexed; the address test is exact
            func.lower(Recipient.address) == address,
            Recipient.state.in_(PENDING_RECIPIENT_STATES),
        )
    )
    if message_class is not None:
        query = query.where(Message.message_class == message_class)
    if phi_only:
        query = query.where(Message.phi_verdict == "phi")
    message_ids: list[str] = []
    for recipient in session.scalars(query.with_for_update(of=Recipient)):
        recipient.state = RecipientState.CANCELLED
        recipient.final_at = now
        recipient.lease_owner = None
        recipient.lease_until = None
        recipient.last_code = None
        recipient.last_text = reason
        message_ids.append(recipient.message_id)
    session.flush()
    for message_id in set(message_ids):
        close_if_done(session, message_id, now)
    return sorted(set(message_ids))


def close_if_done(session: Session, message_id: str, now: datetime) -> None:
    """An active message with no pending recipient left is done (as the store does it)."""
    pending = session.scalar(
        select(func.count())
        .select_from(Recipient)
        .where(Recipient.message_id == message_id,
               Recipient.state.in_(PENDING_RECIPIENT_STATES))
    )
    if not pending:
        session.execute(
            update(Message)
            .where(Message.id == message_id, Message.state == MessageState.ACTIVE)
            .values(state=MessageState.DONE, final_at=now)
        )
