"""The queue listing: one row per recipient, filtered, in keyset pages.

Pages are keyset (``recipients.id > last seen``), never OFFSET: the database walks the primary
key (or the domain index) from where the last page ended, so page 500 of 100,000 recipients
costs what page 1 costs. Recipient ids grow with arrival, so id order is oldest-first, like
``mailq``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from phigate.errors import UserError
from phigate.queue.models import (
    PENDING_RECIPIENT_STATES,
    Message,
    MessageClass,
    MessageState,
    Recipient,
    RecipientState,
)

MESSAGE_STATES = {state.value: state for state in MessageState}
RECIPIENT_STATES = {state.value: state for state in RecipientState}
#: ``--state`` accepts a message state, a recipient state, or "pending" (the default view).
STATE_CHOICES = ("pending", *MESSAGE_STATES, *RECIPIENT_STATES)


@dataclass(frozen=True)
class QueueFilter:
    #: A message state (held, quarantined...), a recipient state (deferred...) or "pending"
    #: (queued or deferred recipients of any message: what is still in the queue).
    state: str = "pending"
    domain: str | None = None
    #: Case-insensitive substring of the envelope sender.
    sender: str | None = None
    message_class: str | None = None
    older_than: timedelta | None = None
    message_id: str | None = None

    def __post_init__(self) -> None:
        if self.state not in STATE_CHOICES:
            raise UserError(f"unknown state {self.state!r}: use one of {', '.join(STATE_CHOICES)}")
        if self.message_class and self.message_class not in set(MessageClass):
            classes = ", ".join(MessageClass)
            raise UserError(f"unknown class {self.message_class!r}: use one of {classes}")


@dataclass(frozen=True)
class QueueRow:
    recipient_id: int
    message_id: str
    created_at: datetime
    message_state: MessageState
    recipient_state: RecipientState
    sender: str
    recipient: str
    domain: str
    message_class: MessageClass
    phi_verdict: str
    attempts: int
    next_attempt_at: datetime
    last_code: int | None
    last_text: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipient_id": self.recipient_id,
            "message_id": self.message_id,
            "created_at": self.created_at.isoformat(),
            "message_state": str(self.message_state),
            "state": str(self.recipient_state),
            "sender": self.sender,
            "recipient": self.recipient,
            "domain": self.domain,
            "class": self.message_class,
            "phi_verdict": self.phi_verdict,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "last_code": self.last_code,
            "last_text": self.last_text,
        }


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    #: Pass as ``after`` for the next page; None on the last page.
    next_after: int | None
    #: Pass as ``before`` for the previous page; None on the first page.
    prev_before: int | None


_Query = TypeVar("_Query", bound="Select[*tuple[Any, ...]]")

_COLUMNS = (
    Recipient.id, Message.id, Message.created_at, Message.state, Recipient.state, Message.sender,
    Recipient.address, Recipient.domain, Message.message_class, Message.phi_verdict,
    Recipient.attempts, Recipient.next_attempt_at, Recipient.last_code, Recipient.last_text,
)


def _filtered(query: _Query, filters: QueueFilter, now: datetime) -> _Query:
    query = query.join(Message, Message.id == Recipient.message_id)
    if filters.state == "pending":
        query = query.where(Recipient.state.in_(PENDING_RECIPIENT_STATES))
    elif filters.state in MESSAGE_STATES:
        query = query.where(Message.state == MESSAGE_STATES[filters.state])
    else:
        query = query.where(Recipient.state == RECIPIENT_STATES[filters.state])
    if filters.domain:
        query = query.where(Recipient.domain == filters.domain.lower())
    if filters.sender:
        query = query.where(func.lower(Message.sender).contains(filters.sender.lower(),
                                                                autoescape=True))
    if filters.message_class:
        query = query.where(Message.message_class == filters.message_class)
    if filters.older_than is not None:
        query = query.where(Message.created_at <= now - filters.older_than)
    if filters.message_id:
        query = query.where(Recipient.message_id == filters.message_id)
    return query


def list_page(
    session: Session, filters: QueueFilter, *, now: datetime, limit: int,
    after: int | None = None, before: int | None = None,
) -> QueuePage:
    """One page of ``limit`` rows after recipient id ``after`` (or before ``before``)."""
    query = _filtered(select(*_COLUMNS).select_from(Recipient), filters, now)
    backwards = before is not None
    if backwards:
        query = query.where(Recipient.id < before).order_by(Recipient.id.desc())
    else:
        if after is not None:
            query = query.where(Recipient.id > after)
        query = query.order_by(Recipient.id)
    # One row more than asked tells whether another page exists, without a COUNT.
    result: list[tuple[Any, ...]] = [tuple(row) for row in session.execute(query.limit(limit + 1))]
    fetched = [QueueRow(*row) for row in result]
    more = len(fetched) > limit
    rows = fetched[:limit]
    if backwards:
        rows.reverse()
        has_next, has_prev = True, more
    else:
        has_next, has_prev = more, after is not None
    return QueuePage(
        rows=rows,
        next_after=rows[-1].recipient_id if rows and has_next else None,
        prev_before=rows[0].recipient_id if rows and has_prev else None,
    )


def count_rows(session: Session, filters: QueueFilter, *, now: datetime) -> int:
    query = _filtered(select(func.count()).select_from(Recipient), filters, now)
    return int(session.scalar(query) or 0)
