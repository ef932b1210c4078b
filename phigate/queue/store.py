"""The queue store: the only durable state of a message's journey.

A synchronous API over SQLAlchemy; asyncio code calls it with ``asyncio.to_thread`` so that
fsyncs never stall the event loop. Every write is one short transaction.

Claims are leases, not flags: a claimed recipient carries ``lease_owner`` and ``lease_until``.
A node that dies simply lets its leases run out and another node claims the recipients again
(at-least-once delivery). Every update made by a delivery worker names its owner and only
applies while that owner still holds the lease, so a slow node cannot overwrite the work of the
node that took over.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Engine, Select, Table, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from phigate.clock import utcnow
from phigate.errors import PhigateError
from phigate.queue.crypto import DecryptionError, MasterKey, SealedBody
from phigate.queue.db import read_only, writer_turn
from phigate.queue.models import (
    PENDING_RECIPIENT_STATES,
    Attempt,
    Message,
    MessageBody,
    MessageState,
    Recipient,
    RecipientState,
)

# The tables, for the statements of the hot paths that skip the ORM.
_MESSAGES = cast(Table, Message.__table__)
_RECIPIENTS = cast(Table, Recipient.__table__)
_ATTEMPTS = cast(Table, Attempt.__table__)

#: After this many crashes of our own code on one message it is parked as corrupt
#: (Mailman's MAX_BAK_COUNT): never retried forever, never dropped.
MAX_PROCESSING_ERRORS = 3


class UnknownMessage(PhigateError):
    """No message with that id."""


def new_message_id() -> str:
    """Sortable by arrival (millisecond clock first), unguessable (random tail)."""
    return f"{int(time.time() * 1000):011X}{secrets.token_hex(5).upper()}"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


@dataclass(frozen=True)
class NewMessage:
    sender: str
    recipients: Sequence[str]
    body: bytes
    username: str | None = None
    client_ip: str | None = None
    message_class: str = "treatment"
    campaign_id: str | None = None
    phi_verdict: str = "none"
    phi_score: float = 0.0
    phi_categories: Sequence[str] = ()
    rule_hits: Sequence[dict[str, str]] = ()
    state: MessageState = MessageState.ACTIVE
    hold_reason: str | None = None
    #: ``MAIL FROM:<...> REQUIRETLS`` (RFC 8689).
    require_tls: bool = False


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
    message_class: str
    campaign_id: str | None
    require_tls: bool = False
    #: The sender was already told this recipient is delayed.
    delay_notified: bool = False


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
    """One recipient's attempt and what follows from it, for :meth:`SqlQueueStore.record_outcomes`.

    ``delivered``: final, delivered. ``next_attempt_at``: deferred until then (with the
    attempt's code and text). Neither: only the attempt is recorded and the recipient keeps
    its lease (a failure the caller finishes with ``mark_failed`` after queueing the DSN).
    """

    recipient_id: int
    attempt: AttemptRecord
    delivered: bool = False
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class RecipientView:
    id: int
    address: str
    state: RecipientState
    attempts: int
    next_attempt_at: datetime
    last_code: int | None
    last_text: str | None


@dataclass(frozen=True)
class MessageView:
    """What an admin may see of a message: the envelope and decisions, never the body."""

    id: str
    created_at: datetime
    state: MessageState
    sender: str
    username: str | None
    client_ip: str | None
    size: int
    message_class: str
    campaign_id: str | None
    phi_verdict: str
    phi_categories: list[str]
    rule_hits: list[dict[str, str]]
    hold_reason: str | None
    purged: bool
    recipients: list[RecipientView] = field(default_factory=list)


class QueueStore(Protocol):
    """The contract delivery, the relay and the admin tools rely on.

    * ``enqueue`` returns only after the message and its sealed body are committed.
    * ``claim_due`` hands out each pending, due recipient of an active message to at most one
      owner at a time, for ``lease_seconds``.
    * Updates by an owner (``record_attempt``, ``record_outcomes``, ``mark_delivered``,
      ``defer``, ``mark_failed``) return False and change nothing once the owner has lost
      the lease.
    """

    def enqueue(self, message: NewMessage, *, now: datetime | None = None) -> str: ...
    def claim_due(
        self, owner: str, *, now: datetime, limit: int, lease_seconds: int
    ) -> list[ClaimedRecipient]: ...
    def read_body(self, message_id: str) -> bytes: ...
    def record_attempt(self, recipient_id: int, owner: str, attempt: AttemptRecord) -> bool: ...
    def record_outcomes(
        self, owner: str, outcomes: Sequence[Disposition], *, now: datetime
    ) -> list[bool]: ...
    def mark_delivered(self, recipient_id: int, owner: str, *, now: datetime) -> bool: ...
    def mark_delay_notified(self, recipient_ids: Sequence[int], *, now: datetime) -> None: ...
    def defer(
        self, recipient_id: int, owner: str, *, next_attempt_at: datetime, code: int | None,
        text: str | None,
    ) -> bool: ...
    def mark_failed(
        self, recipient_id: int, owner: str, *, state: RecipientState, code: int | None,
        text: str | None, now: datetime,
    ) -> bool: ...
    def release_leases(self, owner: str) -> int: ...
    def reclaim_expired_leases(self, now: datetime) -> int: ...
    def note_processing_error(self, message_id: str) -> bool: ...


class SqlQueueStore:
    """:class:`QueueStore` on SQLAlchemy (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, master_key: MasterKey) -> None:
        self.engine = engine
        self._master_key = master_key
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._readers = sessionmaker(read_only(engine), expire_on_commit=False)
        self._writer_turn = writer_turn(engine)

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A transaction that writes: on SQLite it begins IMMEDIATE, taking the write lock
        (after this process's writers' turn); reads go through :meth:`reading`."""
        with self._writer_turn, self._sessions.begin() as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A transaction that only reads: on SQLite it does not wait for the write lock."""
        with self._readers.begin() as session:
            yield session

    # -- acceptance ---------------------------------------------------------------------

    def enqueue(self, message: NewMessage, *, now: datetime | None = None) -> str:
        if not message.recipients:
            raise ValueError("a message needs at least one recipient")
        now = now or utcnow()
        message_id = new_message_id()
        sealed = self._master_key.seal(message.body, associated_data=message_id.encode())
        row = Message(
            id=message_id,
            created_at=now,
            state=message.state,
            sender=message.sender,
            username=message.username,
            client_ip=message.client_ip,
            size=len(message.body),
            message_class=message.message_class,
            campaign_id=message.campaign_id,
            phi_verdict=message.phi_verdict,
            phi_score=message.phi_score,
            phi_categories=list(message.phi_categories),
            rule_hits=[dict(hit) for hit in message.rule_hits],
            hold_reason=message.hold_reason,
            require_tls=message.require_tls,
            processing_errors=0,
            key_id=sealed.key_id,
            wrapped_key=sealed.wrapped_key,
            nonce=sealed.nonce,
        )
        row.recipients = [
            Recipient(
                address=address,
                domain=domain_of(address),
                state=RecipientState.QUEUED,
                attempts=0,
                next_attempt_at=now,
            )
            for address in message.recipients
        ]
        with self.writing() as session:
            session.add(row)
            session.add(MessageBody(message_id=message_id, ciphertext=sealed.ciphertext))
        return message_id

    def read_body(self, message_id: str) -> bytes:
        with self.reading() as session:
            row = session.execute(
                select(Message.key_id, Message.wrapped_key, Message.nonce, MessageBody.ciphertext)
                .outerjoin(MessageBody, MessageBody.message_id == Message.id)
                .where(Message.id == message_id)
            ).one_or_none()
        if row is None:
            raise UnknownMessage(f"no message {message_id}")
        key_id, wrapped_key, nonce, ciphertext = row
        if wrapped_key is None or ciphertext is None:
            raise DecryptionError(f"message {message_id} was purged")
        return self._master_key.open(
            SealedBody(wrapped_key, nonce, ciphertext, key_id), associated_data=message_id.encode()
        )

    # -- delivery -----------------------------------------------------------------------

    def claim_due(
        self, owner: str, *, now: datetime, limit: int, lease_seconds: int
    ) -> list[ClaimedRecipient]:
        lease_until = now + timedelta(seconds=lease_seconds)
        with self.writing() as session:
            # One scan per pending state: with ``state = X`` the (state, next_attempt_at)
            # index yields rows already in due order, so a claim reads ~limit rows whatever
            # the queue's size. (``state IN (queued, deferred)`` made both backends read and
            # sort every due row: 0.3-0.9 s per claim at a million queued recipients.)
            candidates = [
                row for state in PENDING_RECIPIENT_STATES
                for row in session.execute(_due_query(state, now, limit))
            ]
            candidates.sort(key=lambda row: (row[0].next_attempt_at, row[0].id))
            claimed = []
            for recipient, message in candidates[:limit]:
                recipient.lease_owner = owner
                recipient.lease_until = lease_until
                claimed.append(
                    ClaimedRecipient(
                        recipient_id=recipient.id,
                        message_id=message.id,
                        address=recipient.address,
                        domain=recipient.domain,
                        attempts=recipient.attempts,
                        phi=message.phi,
                        sender=message.sender,
                        created_at=message.created_at,
                        message_class=message.message_class,
                        campaign_id=message.campaign_id,
                        require_tls=message.require_tls,
                        delay_notified=recipient.delay_notified_at is not None,
                    )
                )
        claimed.sort(key=lambda c: (c.domain, c.message_id))
        return claimed

    def record_attempt(self, recipient_id: int, owner: str, attempt: AttemptRecord) -> bool:
        with self.writing() as session:
            recipient = self._leased(session, recipient_id, owner)
            if recipient is None:
                return False
            _add_attempt(session, recipient, attempt)
        return True

    def record_outcomes(
        self, owner: str, outcomes: Sequence[Disposition], *, now: datetime
    ) -> list[bool]:
        """Record each attempt and apply its outcome (see :class:`Disposition`), all in one
        transaction: one commit (one fsync) per delivery instead of two per recipient.

        The same effect as ``record_attempt`` followed by ``mark_delivered`` or ``defer``
        for each recipient, but atomic. Returns, per outcome, False where the owner had lost
        the lease (nothing changed for that recipient).
        """
        # Plain SQL statements rather than the ORM's unit of work: this runs once per
        # delivery, and the ORM's bookkeeping cost more CPU than the database work.
        wanted = [outcome.recipient_id for outcome in outcomes]
        with self.writing() as session:
            message_of: dict[int, str] = dict(session.execute(
                select(_RECIPIENTS.c.id, _RECIPIENTS.c.message_id)
                .where(_RECIPIENTS.c.id.in_(wanted), _RECIPIENTS.c.lease_owner == owner)
            ).all())
            mine = [outcome for outcome in outcomes if outcome.recipient_id in message_of]
            closing = sorted({message_of[o.recipient_id] for o in mine if o.delivered})
            if closing:
                # Lock the messages a delivery may close before any attempt row refers to
                # them. On PostgreSQL inserting an attempt takes a KEY SHARE lock on its
                # message; two jobs of one message that each held one and then asked for the
                # closing lock would deadlock. Held to the commit, the lock also makes the
                # closing check below see every other finished recipient (see
                # _close_message_if_done).
                session.execute(select(_MESSAGES.c.id).where(_MESSAGES.c.id.in_(closing))
                                .order_by(_MESSAGES.c.id).with_for_update())
            if mine:
                session.execute(insert(_ATTEMPTS), [
                    _attempt_row(o.recipient_id, message_of[o.recipient_id], o.attempt)
                    for o in mine])
            for outcome in mine:
                values: dict[str, Any] = {
                    "attempts": _RECIPIENTS.c.attempts + 1,
                    "last_code": outcome.attempt.code, "last_text": outcome.attempt.text}
                if outcome.delivered:
                    values.update(state=RecipientState.DELIVERED, final_at=now,
                                  lease_owner=None, lease_until=None)
                elif outcome.next_attempt_at is not None:
                    values.update(state=RecipientState.DEFERRED,
                                  next_attempt_at=outcome.next_attempt_at,
                                  lease_owner=None, lease_until=None)
                session.execute(update(_RECIPIENTS)
                                .where(_RECIPIENTS.c.id == outcome.recipient_id)
                                .values(values))
            for message_id in closing:
                pending = (select(_RECIPIENTS.c.id)
                           .where(_RECIPIENTS.c.message_id == message_id,
                                  _RECIPIENTS.c.state.in_(PENDING_RECIPIENT_STATES))
                           .exists())
                session.execute(update(_MESSAGES)
                                .where(_MESSAGES.c.id == message_id,
                                       _MESSAGES.c.state == MessageState.ACTIVE, ~pending)
                                .values(state=MessageState.DONE, final_at=now))
        return [outcome.recipient_id in message_of for outcome in outcomes]

    def mark_delay_notified(self, recipient_ids: Sequence[int], *, now: datetime) -> None:
        """Remember that the sender was told these recipients are delayed (once each)."""
        with self.writing() as session:
            session.execute(update(Recipient).where(Recipient.id.in_(list(recipient_ids)))
                            .values(delay_notified_at=now))

    def mark_delivered(self, recipient_id: int, owner: str, *, now: datetime) -> bool:
        return self._finish(recipient_id, owner, RecipientState.DELIVERED, now, None, None)

    def mark_failed(
        self,
        recipient_id: int,
        owner: str,
        *,
        state: RecipientState,
        code: int | None,
        text: str | None,
        now: datetime,
    ) -> bool:
        if not state.is_final:
            raise ValueError(f"{state} is not a final state")
        return self._finish(recipient_id, owner, state, now, code, text)

    def defer(
        self,
        recipient_id: int,
        owner: str,
        *,
        next_attempt_at: datetime,
        code: int | None,
        text: str | None,
    ) -> bool:
        with self.writing() as session:
            recipient = self._leased(session, recipient_id, owner)
            if recipient is None:
                return False
            _defer_recipient(recipient, next_attempt_at, code, text)
        return True

    def release_leases(self, owner: str) -> int:
        """Give back every lease of ``owner`` (graceful shutdown)."""
        with self.writing() as session:
            result = session.execute(
                update(Recipient)
                .where(Recipient.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def reclaim_expired_leases(self, now: datetime) -> int:
        """Clear leases that ran out (their owner died); claims ignore them anyway."""
        with self.writing() as session:
            result = session.execute(
                update(Recipient)
                .where(Recipient.lease_until.is_not(None), Recipient.lease_until < now)
                .values(lease_owner=None, lease_until=None)
            )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def note_processing_error(self, message_id: str) -> bool:
        """Count a crash of our code on this message; park it as corrupt at the limit."""
        with self.writing() as session:
            message = session.get(Message, message_id)
            if message is None:
                return False
            message.processing_errors += 1
            if message.processing_errors >= MAX_PROCESSING_ERRORS:
                message.state = MessageState.CORRUPT
                message.hold_reason = "processing failed repeatedly"
            session.execute(
                update(Recipient)
                .where(Recipient.message_id == message_id)
                .values(lease_owner=None, lease_until=None)
            )
            return message.state == MessageState.CORRUPT

    # -- admin --------------------------------------------------------------------------

    def get_message(self, message_id: str) -> MessageView:
        with self.reading() as session:
            message = _message(session, message_id)
            recipients = session.scalars(
                select(Recipient).where(Recipient.message_id == message_id).order_by(Recipient.id)
            ).all()
            return _message_view(message, recipients)

    def set_state(self, message_id: str, state: MessageState, *, reason: str | None = None) -> None:
        with self.writing() as session:
            message = _message(session, message_id)
            message.state = state
            message.hold_reason = reason

    def destroy_body(self, message_id: str, *, now: datetime | None = None) -> None:
        """Crypto-shred: drop the wrapped key and the ciphertext, keep the metadata."""
        with self.writing() as session:
            message = _message(session, message_id)
            message.wrapped_key = None
            message.purged_at = now or utcnow()
            body = session.get(MessageBody, message_id)
            if body is not None:
                session.delete(body)

    def count_messages(self) -> dict[str, int]:
        with self.reading() as session:
            rows = session.execute(select(Message.state, func.count()).group_by(Message.state))
            return {str(state): int(count) for state, count in rows}

    def count_recipients(self) -> dict[str, int]:
        with self.reading() as session:
            rows = session.execute(
                select(Recipient.state, func.count()).group_by(Recipient.state)
            )
            return {str(state): int(count) for state, count in rows}

    # -- helpers ------------------------------------------------------------------------

    def _leased(self, session: Session, recipient_id: int, owner: str) -> Recipient | None:
        recipient = session.get(Recipient, recipient_id)
        if recipient is None or recipient.lease_owner != owner:
            return None
        return recipient

    def _finish(
        self,
        recipient_id: int,
        owner: str,
        state: RecipientState,
        now: datetime,
        code: int | None,
        text: str | None,
    ) -> bool:
        with self.writing() as session:
            recipient = self._leased(session, recipient_id, owner)
            if recipient is None:
                return False
            _finish_recipient(session, recipient, state, now, code, text)
        return True


def _due_query(state: RecipientState, now: datetime, limit: int
               ) -> Select[Recipient, Message]:
    """Due, unleased recipients in one state, of active messages, oldest due first."""
    return (
        select(Recipient, Message)
        .join(Message, Message.id == Recipient.message_id)
        .where(
            Recipient.state == state,
            Recipient.next_attempt_at <= now,
            or_(Recipient.lease_until.is_(None), Recipient.lease_until < now),
            Message.state == MessageState.ACTIVE,
        )
        .order_by(Recipient.next_attempt_at)
        .limit(limit)
        # PostgreSQL: concurrent claimers skip each other's rows instead of waiting (rows
        # locked here but not leased are free again at commit). SQLite ignores this; its
        # BEGIN IMMEDIATE already serialises claimers.
        .with_for_update(of=Recipient, skip_locked=True)
    )


def _release(recipient: Recipient) -> None:
    recipient.lease_owner = None
    recipient.lease_until = None


def _add_attempt(session: Session, recipient: Recipient, attempt: AttemptRecord) -> None:
    recipient.attempts += 1
    recipient.last_code = attempt.code
    recipient.last_text = attempt.text
    session.add(Attempt(**_attempt_row(recipient.id, recipient.message_id, attempt)))


def _attempt_row(recipient_id: int, message_id: str, attempt: AttemptRecord) -> dict[str, Any]:
    return {
        "recipient_id": recipient_id,
        "message_id": message_id,
        "started_at": attempt.started_at,
        "duration_seconds": attempt.duration_seconds,
        "host": attempt.host,
        "code": attempt.code,
        "text": attempt.text,
        "permanent": attempt.permanent,
        "tls_version": attempt.tls_version,
        "tls_cipher": attempt.tls_cipher,
        "cert_verified": attempt.cert_verified,
        "tls_policy": attempt.tls_policy,
    }


def _defer_recipient(recipient: Recipient, next_attempt_at: datetime, code: int | None,
                     text: str | None) -> None:
    recipient.state = RecipientState.DEFERRED
    recipient.next_attempt_at = next_attempt_at
    recipient.last_code = code
    recipient.last_text = text
    _release(recipient)


def _finish_recipient(session: Session, recipient: Recipient, state: RecipientState,
                      now: datetime, code: int | None = None, text: str | None = None) -> None:
    recipient.state = state
    recipient.final_at = now
    _release(recipient)
    if code is not None or text is not None:
        recipient.last_code = code
        recipient.last_text = text
    session.flush()
    _close_message_if_done(session, recipient.message_id, now)


def _message(session: Session, message_id: str) -> Message:
    message = session.get(Message, message_id)
    if message is None:
        raise UnknownMessage(f"no message {message_id}")
    return message


def _close_message_if_done(session: Session, message_id: str, now: datetime) -> None:
    # Lock the message first: two recipients finishing at once on PostgreSQL would each
    # count the other as still pending (read committed) and neither would close it. With
    # the lock, the second one counts after the first has committed.
    session.execute(select(Message.id).where(Message.id == message_id).with_for_update())
    pending = session.scalar(
        select(func.count())
        .select_from(Recipient)
        .where(
            Recipient.message_id == message_id,
            Recipient.state.in_(PENDING_RECIPIENT_STATES),
        )
    )
    if not pending:
        session.execute(
            update(Message)
            .where(Message.id == message_id, Message.state == MessageState.ACTIVE)
            .values(state=MessageState.DONE, final_at=now)
        )


def _message_view(message: Message, recipients: Sequence[Recipient]) -> MessageView:
    return MessageView(
        id=message.id,
        created_at=message.created_at,
        state=message.state,
        sender=message.sender,
        username=message.username,
        client_ip=message.client_ip,
        size=message.size,
        message_class=message.message_class,
        campaign_id=message.campaign_id,
        phi_verdict=message.phi_verdict,
        phi_categories=list(message.phi_categories),
        rule_hits=[dict(hit) for hit in message.rule_hits],
        hold_reason=message.hold_reason,
        purged=message.wrapped_key is None,
        recipients=[
            RecipientView(
                id=r.id,
                address=r.address,
                state=r.state,
                attempts=r.attempts,
                next_attempt_at=r.next_attempt_at,
                last_code=r.last_code,
                last_text=r.last_text,
            )
            for r in recipients
        ],
    )


def as_dict(view: MessageView) -> dict[str, Any]:
    """JSON-ready form of a :class:`MessageView` (for ``--json`` output)."""
    return {
        "id": view.id,
        "created_at": view.created_at.isoformat(),
        "state": str(view.state),
        "sender": view.sender,
        "username": view.username,
        "client_ip": view.client_ip,
        "size": view.size,
        "class": view.message_class,
        "campaign": view.campaign_id,
        "phi_verdict": view.phi_verdict,
        "phi_categories": view.phi_categories,
        "rule_hits": view.rule_hits,
        "hold_reason": view.hold_reason,
        "purged": view.purged,
        "recipients": [
            {
                "address": r.address,
                "state": str(r.state),
                "attempts": r.attempts,
                "next_attempt_at": r.next_attempt_at.isoformat(),
                "last_code": r.last_code,
                "last_text": r.last_text,
            }
            for r in view.recipients
        ],
    }
