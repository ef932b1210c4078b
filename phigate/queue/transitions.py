"""Every state change of messages and recipients: the one way to change the queue.

Delivery, admin actions, unsubscribes and consent changes, campaigns and purge all change
``messages`` and ``recipients`` through these functions (and delivery's attempts through
:mod:`phigate.queue.outcomes`), and only through them. Each runs
inside the caller's transaction (``store.writing()`` or the caller's own session), so a
change and what goes with it (an audit entry, a suppression) commit together or not at all.

Two rules hold everywhere:

- A change made on behalf of a delivery worker names its owner and applies only while that
  owner still holds the recipient's lease; otherwise it changes nothing and says so (False).
- A message whose last pending recipient reached a final state is ``done``
  (:func:`close_if_done`). The messages are locked first: two recipients finishing at once on
  PostgreSQL would each count the other as still pending (read committed) and neither would
  close the message. With the lock, the second counts after the first has committed.

Plain SQL statements (SQLAlchemy Core), not the ORM's unit of work: delivery runs these once
per attempt, and the ORM's bookkeeping cost more CPU than the database work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from phigate.queue.models import (
    PENDING_RECIPIENT_STATES,
    Attempt,
    DeferReason,
    Message,
    MessageBody,
    MessageState,
    Recipient,
    RecipientState,
)
from phigate.queue.pickup_models import Pickup, PickupState

_MESSAGES = cast(Table, Message.__table__)
_RECIPIENTS = cast(Table, Recipient.__table__)
_ATTEMPTS = cast(Table, Attempt.__table__)
_BODIES = cast(Table, MessageBody.__table__)

#: After this many crashes of our own code on one message it is parked as corrupt
#: (Mailman's MAX_BAK_COUNT): never retried forever, never dropped.
MAX_PROCESSING_ERRORS = 3

_NO_LEASE = {"lease_owner": None, "lease_until": None}


@dataclass(frozen=True)
class AttemptRecord:
    started_at: datetime
    host: str | None
    code: int | None
    text: str | None
    permanent: bool = False
    tls_version: str | None = None
    tls_cipher: str | None = None
    cert_verified: bool | None = None
    duration_seconds: float = 0.0
    tls_policy: str | None = None


@dataclass(frozen=True)
class Disposition:
    """One recipient's attempt and what follows from it, for :func:`record_outcomes`.

    ``delivered``: final, delivered. ``next_attempt_at``: deferred until then (with the
    attempt's code and text). Neither: only the attempt is recorded and the recipient keeps
    its lease (a failure the caller finishes with :func:`fail` after queueing the DSN).
    """

    recipient_id: int
    attempt: AttemptRecord
    delivered: bool = False
    next_attempt_at: datetime | None = None
    #: Why it is deferred (with ``next_attempt_at``).
    defer_reason: DeferReason | None = None


# -- closing ------------------------------------------------------------------------------


def lock_messages(session: Session, message_ids: Iterable[str]) -> None:
    """Lock these message rows to the commit, in id order (so two callers never deadlock).

    Nothing to do on SQLite: every writing transaction there began IMMEDIATE and holds the
    database's only write lock, and SQLite ignores FOR UPDATE (the query was pure cost).
    """
    ids = sorted(set(message_ids))
    if ids and session.get_bind().dialect.name != "sqlite":
        session.execute(select(_MESSAGES.c.id).where(_MESSAGES.c.id.in_(ids))
                        .order_by(_MESSAGES.c.id).with_for_update())


def close_if_done(session: Session, message_ids: Iterable[str], now: datetime, *,
                  locked: bool = False) -> None:
    """Each active message with no pending recipient left becomes ``done``."""
    ids = sorted(set(message_ids))
    if not locked:
        lock_messages(session, ids)
    if ids:
        session.execute(_CLOSE_IF_DONE, [{"b_id": message_id, "b_now": now}
                                         for message_id in ids])


#: Built once (its compiled form is cached against it): one executemany for all messages.
#: The pending states are spelt as equalities, not ``IN``: an ``IN`` list is an "expanding"
#: parameter, which SQLAlchemy refuses in an executemany (two or more messages).
_CLOSE_IF_DONE = (
    update(_MESSAGES)
    .where(_MESSAGES.c.id == bindparam("b_id"), _MESSAGES.c.state == MessageState.ACTIVE,
           ~select(_RECIPIENTS.c.id)
           .where(_RECIPIENTS.c.message_id == bindparam("b_id"),
                  or_(*(_RECIPIENTS.c.state == state
                        for state in PENDING_RECIPIENT_STATES))).exists())
    .values(state=MessageState.DONE, final_at=bindparam("b_now", type_=_MESSAGES.c.final_at.type))
)


# -- delivery: changes by the owner of a lease -------------------------------------------------
# (recording attempts and their outcomes: :mod:`phigate.queue.outcomes`)


def defer(session: Session, recipient_id: int, owner: str, *, next_attempt_at: datetime,
          code: int | None, text: str | None,
          reason: DeferReason = DeferReason.RATE_LIMITED) -> bool:
    """Put a leased recipient back in the queue until ``next_attempt_at`` without an attempt
    (its destination asked us to slow down before we got to it)."""
    result = session.execute(
        update(_RECIPIENTS).where(_RECIPIENTS.c.id == recipient_id,
                                  _RECIPIENTS.c.lease_owner == owner)
        .values(state=RecipientState.DEFERRED, next_attempt_at=next_attempt_at,
                last_code=code, last_text=text, defer_reason=reason, **_NO_LEASE))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def fail(session: Session, recipient_id: int, owner: str, *, state: RecipientState,
         code: int | None, text: str | None, now: datetime) -> bool:
    """A leased recipient failed for good (bounced or expired), after its DSN was queued."""
    if not state.is_final:
        raise ValueError(f"{state} is not a final state")
    message_id = session.scalar(select(_RECIPIENTS.c.message_id).where(
        _RECIPIENTS.c.id == recipient_id, _RECIPIENTS.c.lease_owner == owner))
    if message_id is None:
        return False
    lock_messages(session, [message_id])
    values: dict[str, Any] = {"state": state, "final_at": now, **_NO_LEASE}
    if code is not None or text is not None:
        values.update(last_code=code, last_text=text)
    session.execute(update(_RECIPIENTS).where(_RECIPIENTS.c.id == recipient_id,
                                              _RECIPIENTS.c.lease_owner == owner)
                    .values(values))
    close_if_done(session, [message_id], now, locked=True)
    return True


def mark_delay_notified(session: Session, recipient_ids: Sequence[int], *,
                        now: datetime) -> None:
    """Remember that the sender was told these recipients are delayed (once each)."""
    session.execute(update(_RECIPIENTS).where(_RECIPIENTS.c.id.in_(list(recipient_ids)))
                    .values(delay_notified_at=now))


def release_leases(session: Session, owner: str) -> int:
    """Give back every lease of ``owner`` (graceful shutdown)."""
    result = session.execute(update(_RECIPIENTS).where(_RECIPIENTS.c.lease_owner == owner)
                             .values(_NO_LEASE))
    return int(result.rowcount)  # type: ignore[attr-defined]


def release_node_leases(session: Session, node: str | None) -> int:
    """Give back the leases a previous run of ``node`` left (it was killed): every lease
    when ``node`` is None (a single-node SQLite queue has no other owner). Owners are
    ``NODE:PID:RANDOM``, see the scheduler."""
    query = update(_RECIPIENTS).where(_RECIPIENTS.c.lease_owner.is_not(None))
    if node is not None:
        query = query.where(_RECIPIENTS.c.lease_owner.startswith(f"{node}:", autoescape=True))
    result = session.execute(query.values(_NO_LEASE))
    return int(result.rowcount)  # type: ignore[attr-defined]


def reclaim_expired_leases(session: Session, now: datetime) -> int:
    """Clear leases that ran out (their owner died); claims ignore them anyway."""
    result = session.execute(update(_RECIPIENTS).where(_RECIPIENTS.c.lease_until.is_not(None),
                                                       _RECIPIENTS.c.lease_until < now)
                             .values(_NO_LEASE))
    return int(result.rowcount)  # type: ignore[attr-defined]


def note_processing_error(session: Session, message_id: str, *,
                          limit: int | None = None) -> bool:
    """Count a crash of our code on this message; park it as corrupt at the limit.

    Its leases are released either way, so it is retried meanwhile. True if now parked.
    """
    message = session.get(Message, message_id, with_for_update=True)
    if message is None:
        return False
    message.processing_errors += 1
    if message.processing_errors >= (limit or MAX_PROCESSING_ERRORS):
        message.state = MessageState.CORRUPT
        message.hold_reason = "processing failed repeatedly"
    session.execute(update(_RECIPIENTS).where(_RECIPIENTS.c.message_id == message_id)
                    .values(_NO_LEASE))
    return message.state == MessageState.CORRUPT


# -- cancelling pending copies (unsubscribes, suppressions, consent, admin) ----------------


def cancel_pending(session: Session, condition: ColumnElement[bool], *, now: datetime,
                   reason: str | None = None) -> list[str]:
    """Cancel the pending recipients matching ``condition`` (over recipients joined with
    their messages); returns the ids of their messages, which are closed if done.

    A worker holding a lease on one of them loses it: its later update names a lease it no
    longer has and changes nothing.
    """
    query = (select(Recipient.id, Recipient.message_id)
             .join(Message, Message.id == Recipient.message_id)
             .where(Recipient.state.in_(PENDING_RECIPIENT_STATES), condition)
             .with_for_update(of=Recipient))
    rows = session.execute(query).all()
    if not rows:
        return []
    values: dict[str, Any] = {"state": RecipientState.CANCELLED, "final_at": now, **_NO_LEASE}
    if reason is not None:
        values.update(last_code=None, last_text=reason)
    session.execute(update(_RECIPIENTS).where(_RECIPIENTS.c.id.in_([r.id for r in rows]))
                    .values(values))
    message_ids = sorted({r.message_id for r in rows})
    close_if_done(session, message_ids, now)
    return message_ids


# -- whole messages (admin actions, campaigns, purge) -----------------------------------------


def set_message_state(session: Session, where: ColumnElement[bool], state: MessageState, *,
                      reason: str | None = None) -> list[str]:
    """Move the messages matching ``where`` to ``state`` (with ``reason`` as the hold
    reason); returns their ids."""
    ids = list(session.scalars(select(_MESSAGES.c.id).where(where)
                               .with_for_update()).all())
    if ids:
        session.execute(update(_MESSAGES).where(_MESSAGES.c.id.in_(ids))
                        .values(state=state, hold_reason=reason))
    return ids


def hold_message(message: Message, reason: str) -> None:
    message.state = MessageState.HELD
    message.hold_reason = reason


def activate_message(session: Session, message: Message, now: datetime) -> None:
    """Released: active again, its error count reset, every pending recipient due now."""
    message.state = MessageState.ACTIVE
    message.hold_reason = None
    message.processing_errors = 0
    reschedule_pending(session, message.id, now)


def reschedule_pending(session: Session, message_id: str, now: datetime) -> int:
    """Make every pending recipient of the message due now (retry, release)."""
    result = session.execute(update(_RECIPIENTS).where(_pending_of(message_id))
                             .values(next_attempt_at=now))
    return int(result.rowcount)  # type: ignore[attr-defined]


def finish_message(session: Session, message: Message, state: RecipientState, now: datetime,
                   *, code: int | None = None, text: str | None = None) -> list[str]:
    """Every pending recipient of the message to the final ``state``, and the message done.

    Returns the addresses changed (a bounce's DSN names them).
    """
    addresses = list(session.scalars(select(_RECIPIENTS.c.address)
                                     .where(_pending_of(message.id))).all())
    values: dict[str, Any] = {"state": state, "final_at": now, **_NO_LEASE}
    if code is not None or text is not None:
        values.update(last_code=code, last_text=text)
    session.execute(update(_RECIPIENTS).where(_pending_of(message.id)).values(values))
    message.state = MessageState.DONE
    message.final_at = message.final_at or now
    message.hold_reason = None
    return addresses


def shred_bodies(session: Session, message_ids: Sequence[str], now: datetime) -> None:
    """Crypto-shred: drop the wrapped keys and the ciphertexts, keep the metadata."""
    session.execute(update(_MESSAGES).where(_MESSAGES.c.id.in_(message_ids))
                    .values(wrapped_key=None, purged_at=now))
    session.execute(delete(_BODIES).where(_BODIES.c.message_id.in_(message_ids)))
    # Secure pickup keeps its own sealed copy per recipient: its key goes too.
    session.execute(update(Pickup).where(Pickup.message_id.in_(message_ids),
                                         Pickup.wrapped_key.is_not(None))
                    .values(wrapped_key=None, ciphertext=None, code_hash=None,
                            session_hash=None, state=PickupState.DELETED, destroyed_at=now))


def expire_pickup(session: Session, pickup_id: int, now: datetime) -> None:
    """A secure pickup past its ``expires_at``: its data key and ciphertext destroyed."""
    session.execute(update(Pickup).where(Pickup.id == pickup_id)
                    .values(wrapped_key=None, ciphertext=None, code_hash=None,
                            session_hash=None, state=PickupState.EXPIRED, destroyed_at=now))


def remove_messages(session: Session, message_ids: Sequence[str]) -> None:
    """Remove messages for good (retention): recipients, attempts and bodies go with them
    (ON DELETE CASCADE)."""
    session.execute(delete(_MESSAGES).where(_MESSAGES.c.id.in_(message_ids)))


# -- helpers ----------------------------------------------------------------------------------


def attempt_row(recipient_id: int, message_id: str, attempt: AttemptRecord) -> dict[str, Any]:
    return {
        "recipient_id": recipient_id, "message_id": message_id,
        "started_at": attempt.started_at, "duration_seconds": attempt.duration_seconds,
        "host": attempt.host, "code": attempt.code, "text": attempt.text,
        "permanent": attempt.permanent, "tls_version": attempt.tls_version,
        "tls_cipher": attempt.tls_cipher, "cert_verified": attempt.cert_verified,
        "tls_policy": attempt.tls_policy,
    }


def _pending_of(message_id: str) -> ColumnElement[bool]:
    return (_RECIPIENTS.c.message_id == message_id) & _RECIPIENTS.c.state.in_(
        PENDING_RECIPIENT_STATES)
