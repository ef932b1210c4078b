"""State changes an operator makes to one message, inside the caller's transaction.

Each function checks that the change makes sense for the message's state and raises
:class:`ActionRefused` (a one-line reason, no content) when it does not, so a CLI run over
several ids can report each one. The audit entry is written by the caller in the same
transaction: the change and its record commit together or not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from phigate.errors import UserError
from phigate.queue.models import (
    PENDING_RECIPIENT_STATES,
    Message,
    MessageBody,
    MessageState,
    Recipient,
    RecipientState,
)

#: What a final ``queue bounce`` tells the remote side (and the DSN): never the admin's text.
BOUNCE_CODE = 550
BOUNCE_TEXT = "5.0.0 returned to sender by the relay administrator"


class ActionRefused(UserError):
    """The action does not apply to the message in its current state."""


def _pending(message_id: str) -> Any:
    return (Recipient.message_id == message_id) & Recipient.state.in_(PENDING_RECIPIENT_STATES)


def retry(session: Session, message: Message, now: datetime) -> dict[str, Any]:
    if message.state != MessageState.ACTIVE:
        raise ActionRefused(f"message {message.id} is {message.state}: "
                            + ("release it first" if message.state != MessageState.DONE
                               else "nothing left to deliver"))
    result = session.execute(update(Recipient).where(_pending(message.id))
                             .values(next_attempt_at=now))
    return {"recipients": int(result.rowcount)}  # type: ignore[attr-defined]


def hold(session: Session, message: Message, reason: str | None) -> dict[str, Any]:
    if message.state != MessageState.ACTIVE:
        raise ActionRefused(f"message {message.id} is {message.state}: only active mail is held")
    message.state = MessageState.HELD
    message.hold_reason = reason or "held by an administrator"
    return {"reason": message.hold_reason}


def release(session: Session, message: Message, reason: str | None,
            now: datetime) -> dict[str, Any]:
    previous = message.state
    if previous == MessageState.QUARANTINED and not (reason and reason.strip()):
        raise ActionRefused(f"message {message.id} is quarantined by policy: "
                            "releasing it needs a reason")
    if previous == MessageState.AWAITING_APPROVAL:
        raise ActionRefused(f"message {message.id} waits for its campaign's approval: "
                            "approve the campaign instead")
    if previous not in (MessageState.HELD, MessageState.QUARANTINED, MessageState.CORRUPT):
        raise ActionRefused(f"message {message.id} is {previous}: not held")
    message.state = MessageState.ACTIVE
    message.hold_reason = None
    message.processing_errors = 0
    session.execute(update(Recipient).where(_pending(message.id)).values(next_attempt_at=now))
    detail: dict[str, Any] = {"from_state": str(previous), "phi_verdict": message.phi_verdict}
    if reason:
        detail["reason"] = reason.strip()
    return detail


def cancel(session: Session, message: Message, now: datetime) -> dict[str, Any]:
    """``queue delete``: cancel what is pending and crypto-shred the body.

    The envelope and the attempts stay until the retention period ends (they are the
    documentation HIPAA asks to keep); nothing can be delivered or read any more.
    """
    if message.state == MessageState.DONE and message.wrapped_key is None:
        raise ActionRefused(f"message {message.id} is already finished and purged")
    result = session.execute(
        update(Recipient).where(_pending(message.id))
        .values(state=RecipientState.CANCELLED, final_at=now, lease_owner=None, lease_until=None)
    )
    previous = message.state
    _finish(session, message, now)
    return {"from_state": str(previous), "cancelled": int(result.rowcount)}  # type: ignore[attr-defined]


def bounce(session: Session, message: Message, now: datetime) -> list[str]:
    """Fail every pending recipient permanently; returns their addresses (for the DSN)."""
    if message.state == MessageState.DONE:
        raise ActionRefused(f"message {message.id} is done: nothing left to bounce")
    recipients = session.scalars(select(Recipient.address).where(_pending(message.id))).all()
    session.execute(
        update(Recipient).where(_pending(message.id))
        .values(state=RecipientState.BOUNCED, final_at=now, last_code=BOUNCE_CODE,
                last_text=BOUNCE_TEXT, lease_owner=None, lease_until=None)
    )
    message.state = MessageState.DONE
    message.final_at = now
    message.hold_reason = None
    return list(recipients)


def _finish(session: Session, message: Message, now: datetime) -> None:
    message.state = MessageState.DONE
    message.final_at = message.final_at or now
    message.hold_reason = None
    message.wrapped_key = None
    message.purged_at = now
    session.execute(delete(MessageBody).where(MessageBody.message_id == message.id))
