"""Delivery attempts and what follows from them, recorded in the caller's transaction: the
hot path of :mod:`phigate.queue.transitions` (one call per delivered job).

The statements are built once at import, with bound parameters, and run as executemany:
building and cache-keying a statement per recipient cost more CPU than the database work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from phigate.queue.models import Attempt, DeferReason, Recipient, RecipientState
from phigate.queue.transitions import Disposition, attempt_row, close_if_done, lock_messages

_RECIPIENTS = cast(Table, Recipient.__table__)
_ATTEMPTS = cast(Table, Attempt.__table__)
_R = _RECIPIENTS.c

_OWNED = select(_R.id, _R.message_id).where(
    _R.id.in_(bindparam("ids", expanding=True)), _R.lease_owner == bindparam("owner"))
_INSERT_ATTEMPTS = insert(_ATTEMPTS)
_COUNTED: dict[str, Any] = {
    "attempts": _R.attempts + 1,
    "last_code": bindparam("b_code", type_=_R.last_code.type),
    "last_text": bindparam("b_text", type_=_R.last_text.type)}
#: The attempt only: a failure the caller finishes after queueing the DSN (keeps its lease).
_ATTEMPTED = update(_RECIPIENTS).where(_R.id == bindparam("b_id")).values(_COUNTED)
_DELIVERED = update(_RECIPIENTS).where(_R.id == bindparam("b_id")).values(
    **_COUNTED, state=RecipientState.DELIVERED,
    final_at=bindparam("b_now", type_=_R.final_at.type), defer_reason=None,
    lease_owner=None, lease_until=None)
_DEFERRED = update(_RECIPIENTS).where(_R.id == bindparam("b_id")).values(
    **_COUNTED, state=RecipientState.DEFERRED,
    next_attempt_at=bindparam("b_next", type_=_R.next_attempt_at.type),
    defer_reason=bindparam("b_reason", type_=_R.defer_reason.type),
    lease_owner=None, lease_until=None)


def record_outcomes(session: Session, owner: str, outcomes: Sequence[Disposition], *,
                    now: datetime) -> list[bool]:
    """Record each attempt and apply its outcome (see :class:`Disposition`).

    Returns, per outcome, False where the owner had lost the lease (nothing changed for
    that recipient).
    """
    message_of: dict[int, str] = dict(session.execute(_OWNED, {
        "ids": [outcome.recipient_id for outcome in outcomes], "owner": owner}).all())
    mine = [outcome for outcome in outcomes if outcome.recipient_id in message_of]
    closing = {message_of[o.recipient_id] for o in mine if o.delivered}
    # Lock the messages a delivery may close before any attempt row refers to them. On
    # PostgreSQL inserting an attempt takes a KEY SHARE lock on its message; two jobs of
    # one message that each held one and then asked for the closing lock would deadlock.
    lock_messages(session, closing)
    if mine:
        session.execute(_INSERT_ATTEMPTS, [
            attempt_row(o.recipient_id, message_of[o.recipient_id], o.attempt) for o in mine])
    delivered: list[dict[str, Any]] = []
    deferred: list[dict[str, Any]] = []
    attempted: list[dict[str, Any]] = []
    for outcome in mine:
        row = {"b_id": outcome.recipient_id, "b_code": outcome.attempt.code,
               "b_text": outcome.attempt.text}
        if outcome.delivered:
            delivered.append({**row, "b_now": now})
        elif outcome.next_attempt_at is not None:
            deferred.append({**row, "b_next": outcome.next_attempt_at,
                             "b_reason": outcome.defer_reason
                             or DeferReason.TEMPORARY_FAILURE})
        else:
            attempted.append(row)
    for statement, rows in ((_DELIVERED, delivered), (_DEFERRED, deferred),
                            (_ATTEMPTED, attempted)):
        if rows:
            session.execute(statement, rows)
    close_if_done(session, closing, now, locked=True)
    return [outcome.recipient_id in message_of for outcome in outcomes]


@dataclass(frozen=True)
class OutcomeBatchItem:
    """One caller's :func:`record_outcomes` in a batch (see :func:`record_outcome_batch`)."""

    owner: str
    outcomes: tuple[Disposition, ...]
    now: datetime


def record_outcome_batch(session: Session, items: Sequence[OutcomeBatchItem]
                         ) -> list[list[bool]]:
    """:func:`record_outcomes` for each item, in one transaction.

    Every message any item may close is locked first, in id order: each item alone locks
    its own messages in order, but one item after another would not be (two nodes' batches
    could then deadlock on PostgreSQL).
    """
    if len(items) > 1 and session.get_bind().dialect.name != "sqlite":
        delivered = [o.recipient_id for item in items for o in item.outcomes if o.delivered]
        if delivered:
            lock_messages(session, session.scalars(
                select(_R.message_id).where(_R.id.in_(delivered))))
    return [record_outcomes(session, item.owner, item.outcomes, now=item.now)
            for item in items]
