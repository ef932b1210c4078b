"""What an operator may do to one message, inside the caller's transaction.

Each function checks that the change makes sense for the message's state (the change itself
is made by :mod:`phigate.queue.transitions`) and raises
:class:`ActionRefused` (a one-line reason, no content) when it does not, so a CLI run over
several ids can report each one. The audit entry is written by the caller in the same
transaction: the change and its record commit together or not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from phigate.errors import UserError
from phigate.queue import transitions
from phigate.queue.models import Message, MessageState, RecipientState

#: What a final ``queue bounce`` tells the remote side (and the DSN): never the admin's text.
BOUNCE_CODE = 550
BOUNCE_TEXT = "5.0.0 returned to sender by the relay administrator"


class ActionRefused(UserError):
    """The action does not apply to the message in its current state."""


def retry(session: Session, message: Message, now: datetime) -> dict[str, Any]:
    if message.state != MessageState.ACTIVE:
        raise ActionRefused(f"message {message.id} is {message.state}: "
                            + ("release it first" if message.state != MessageState.DONE
                               else "nothing left to deliver"))
    return {"recipients": transitions.reschedule_pending(session, message.id, now)}


def hold(session: Session, message: Message, reason: str | None) -> dict[str, Any]:
    if message.state != MessageState.ACTIVE:
        raise ActionRefused(f"message {message.id} is {message.state}: only active mail is held")
    transitions.hold_message(message, reason or "held by an administrator")
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
    transitions.activate_message(session, message, now)
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
    previous = message.state
    cancelled = transitions.finish_message(session, message, RecipientState.CANCELLED, now)
    transitions.shred_bodies(session, [message.id], now)
    session.expire(message, ["wrapped_key", "purged_at"])  # loaded before the shred
    return {"from_state": str(previous), "cancelled": len(cancelled)}


def bounce(session: Session, message: Message, now: datetime) -> list[str]:
    """Fail every pending recipient permanently; returns their addresses (for the DSN)."""
    if message.state == MessageState.DONE:
        raise ActionRefused(f"message {message.id} is done: nothing left to bounce")
    return transitions.finish_message(session, message, RecipientState.BOUNCED, now,
                                      code=BOUNCE_CODE, text=BOUNCE_TEXT)
