"""What a suppression or a revoked consent does to mail that is already queued.

An unsubscribe "takes effect immediately" (RFC 8058, and the patient's expectation): the
recipient's pending copies in scope are cancelled in the same transaction that records the
suppression, so no delivery worker can pick them up afterwards. A worker that holds a lease
on one of them at that moment loses it: its later update names a lease it no longer has and
changes nothing (see :mod:`phigate.queue.transitions`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func
from sqlalchemy.orm import Session

from phigate.queue import transitions
from phigate.queue.models import Message, MessageClass, Recipient
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
    message_class: MessageClass | None = None,
    phi_only: bool = False,
) -> list[str]:
    """Cancel the address's queued/deferred copies; return the ids of their messages.

    ``message_class`` limits it to one class (``marketing`` for a marketing suppression);
    ``phi_only`` to messages the scanner found PHI in.
    """
    address = normalize_address(address)
    condition = and_(
        Recipient.domain == domain_of(address),  # indexed; the address test is exact
        func.lower(Recipient.address) == address,
    )
    if message_class is not None:
        condition = and_(condition, Message.message_class == message_class)
    if phi_only:
        condition = and_(condition, Message.phi_verdict == "phi")
    return transitions.cancel_pending(session, condition, now=now, reason=reason)
