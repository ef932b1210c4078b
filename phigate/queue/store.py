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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Engine, Table, bindparam, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from phigate.clock import utcnow
from phigate.errors import PhigateError
from phigate.observability import timing
from phigate.queue import transitions
from phigate.queue.claims import ClaimedRecipient, claim
from phigate.queue.crypto import DecryptionError, MasterKey, SealedBody
from phigate.queue.db import one_statement_reads, read_only, writer_turn
from phigate.queue.group_commit import GroupCommit
from phigate.queue.header_id import header_id
from phigate.queue.models import (
    Message,
    MessageBody,
    MessageClass,
    MessageState,
    Recipient,
    RecipientState,
)
from phigate.queue.new_mail import NewMail
from phigate.queue.outcomes import OutcomeBatchItem, record_outcome_batch
from phigate.queue.transitions import Disposition
from phigate.queue.views import MessageView, message_view

_MESSAGES = cast(Table, Message.__table__)
_RECIPIENTS = cast(Table, Recipient.__table__)
_BODIES = cast(Table, MessageBody.__table__)
#: A message's sealed body (NULL ciphertext: purged; no row: no such message).
_READ_BODY = (
    select(_MESSAGES.c.key_id, _MESSAGES.c.wrapped_key, _MESSAGES.c.nonce, _BODIES.c.ciphertext)
    .select_from(_MESSAGES.outerjoin(_BODIES, _BODIES.c.message_id == _MESSAGES.c.id))
    .where(_MESSAGES.c.id == bindparam("message_id"))
)


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
    message_class: MessageClass = MessageClass.TREATMENT
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
class _Accepted:
    """One accepted message's rows, waiting for the group commit."""

    message: dict[str, Any]
    recipients: list[dict[str, Any]]
    body: dict[str, Any]


#: Writes more rows in a claim's transaction (see ``claim_due``).
ClaimHook = Callable[[Session, list[ClaimedRecipient]], None]


class QueueStore(Protocol):
    """The contract delivery, the relay and the admin tools rely on.

    * ``enqueue`` returns only after the message and its sealed body are committed.
    * ``claim_due`` hands out each pending, due recipient of an active message to at most one
      owner at a time, for ``lease_seconds``.
    * Updates by an owner (``record_outcomes``, ``defer``, ``mark_failed``) return False and change
      nothing once the owner has lost the lease.
    * Every state change is made by :mod:`phigate.queue.transitions`.
    """

    def enqueue(self, message: NewMessage, *, now: datetime | None = None) -> str: ...
    def claim_due(
        self, owner: str, *, now: datetime, limit: int, lease_seconds: int,
        also: ClaimHook | None = None,
    ) -> list[ClaimedRecipient]: ...
    def read_body(self, message_id: str) -> bytes: ...
    def record_outcomes(
        self, owner: str, outcomes: Sequence[Disposition], *, now: datetime
    ) -> list[bool]: ...
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
    def note_processing_error(self, message_id: str, *, limit: int | None = None
                              ) -> bool: ...


class SqlQueueStore:
    """:class:`QueueStore` on SQLAlchemy (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, master_key: MasterKey) -> None:
        self.engine = engine
        self._master_key = master_key
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._readers = sessionmaker(read_only(engine), expire_on_commit=False)
        self._one_statement = one_statement_reads(engine)
        self._writer_turn = writer_turn(engine)
        self._accepted = GroupCommit(self._commit_accepted)
        self._outcomes = GroupCommit(self._commit_outcomes)
        #: Fired once a message queued for delivery is committed (delivery's wake-up).
        self.new_mail = NewMail()

    @property
    def master_key(self) -> MasterKey:
        return self._master_key

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A transaction that writes: on SQLite it begins IMMEDIATE, taking the write lock
        (after this process's writers' turn); reads go through :meth:`reading`."""
        waiting = time.perf_counter()
        with self._writer_turn:
            timing.note("writer_turn", time.perf_counter() - waiting)  # debug timing only
            with self._sessions.begin() as session:
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
        row: dict[str, Any] = {
            "id": message_id,
            "created_at": now,
            "state": message.state,
            "sender": message.sender,
            "username": message.username,
            "client_ip": message.client_ip,
            "size": len(message.body),
            "header_id": header_id(message.body),
            "message_class": message.message_class,
            "campaign_id": message.campaign_id,
            "phi_verdict": message.phi_verdict,
            "phi_score": message.phi_score,
            "phi_categories": list(message.phi_categories),
            "rule_hits": [dict(hit) for hit in message.rule_hits],
            "hold_reason": message.hold_reason,
            "require_tls": message.require_tls,
            "processing_errors": 0,
            "final_at": None,
            "purged_at": None,
            "key_id": sealed.key_id,
            "wrapped_key": sealed.wrapped_key,
            "nonce": sealed.nonce,
        }
        recipients = [
            {"message_id": message_id, "address": address, "domain": domain_of(address),
             "state": RecipientState.QUEUED, "attempts": 0, "next_attempt_at": now}
            for address in message.recipients
        ]
        # Sealed and built here, in the caller's thread; committed with whatever other
        # messages are waiting for the write lock (one fsync for all), returning only
        # once that commit is durable.
        self._accepted.submit(_Accepted(row, recipients, {
            "message_id": message_id, "ciphertext": sealed.ciphertext}))
        if message.state == MessageState.ACTIVE:
            self.new_mail.notify()
        return message_id

    def _commit_accepted(self, batch: Sequence[_Accepted]) -> list[None]:
        """One transaction for the batch, three multi-row INSERTs (plain SQL: the ORM's
        unit of work cost more CPU per message than the database did)."""
        with self.writing() as session:
            session.execute(insert(_MESSAGES), [accepted.message for accepted in batch])
            session.execute(insert(_RECIPIENTS),
                            [row for accepted in batch for row in accepted.recipients])
            session.execute(insert(_BODIES), [accepted.body for accepted in batch])
        return [None] * len(batch)

    def read_body(self, message_id: str) -> bytes:
        # Once per delivery: one prepared Core statement on a connection that sends no
        # BEGIN on SQLite (one SELECT is its own snapshot). Building the ORM select and
        # running it in a Session cost ~0.5 ms of CPU per message (issue 16).
        with self._one_statement.connect() as connection:
            row = connection.execute(_READ_BODY, {"message_id": message_id}).one_or_none()
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
        self, owner: str, *, now: datetime, limit: int, lease_seconds: int,
        also: ClaimHook | None = None,
    ) -> list[ClaimedRecipient]:
        """Lease due recipients to ``owner``; ``also(session, claimed)`` writes more in the
        claim's transaction when something was claimed (delivery's tokens: one commit)."""
        lease_until = now + timedelta(seconds=lease_seconds)
        with self.writing() as session:
            claimed = claim(session, owner, now=now, limit=limit, lease_until=lease_until)
            if also is not None and claimed:
                also(session, claimed)
        claimed.sort(key=lambda c: (c.domain, c.message_id))
        return claimed

    def record_outcomes(
        self, owner: str, outcomes: Sequence[Disposition], *, now: datetime
    ) -> list[bool]:
        """Record each attempt and apply its outcome (see :class:`Disposition`), all in one
        transaction, shared with other jobs' outcomes recorded at the same moment (group
        commit); returns once it committed. Returns, per outcome, False where the owner
        had lost the lease."""
        return self._outcomes.submit(OutcomeBatchItem(owner, tuple(outcomes), now))

    def _commit_outcomes(self, batch: Sequence[OutcomeBatchItem]
                         ) -> list[list[bool]]:
        """The outcomes of the jobs waiting for the write lock, in one transaction (one
        fsync): delivery finishes many jobs at once, each a commit of its own before."""
        with self.writing() as session:
            return record_outcome_batch(session, batch)

    def mark_delay_notified(self, recipient_ids: Sequence[int], *, now: datetime) -> None:
        """Remember that the sender was told these recipients are delayed (once each)."""
        with self.writing() as session:
            transitions.mark_delay_notified(session, recipient_ids, now=now)

    def defer(self, recipient_id: int, owner: str, *, next_attempt_at: datetime,
              code: int | None, text: str | None) -> bool:
        with self.writing() as session:
            return transitions.defer(session, recipient_id, owner,
                                     next_attempt_at=next_attempt_at, code=code, text=text)

    def mark_failed(self, recipient_id: int, owner: str, *, state: RecipientState,
                    code: int | None, text: str | None, now: datetime) -> bool:
        with self.writing() as session:
            return transitions.fail(session, recipient_id, owner, state=state, code=code,
                                    text=text, now=now)

    def release_leases(self, owner: str) -> int:
        """Give back every lease of ``owner`` (graceful shutdown)."""
        with self.writing() as session:
            return transitions.release_leases(session, owner)

    def release_node_leases(self, node: str) -> int:
        """At start: give back the leases this node's previous run held (killed before it
        could). On SQLite the queue has one node, so every lease is ours; on PostgreSQL only
        the leases owned by ``node`` (other nodes' deliveries go on)."""
        everyone = self.engine.dialect.name == "sqlite"
        with self.writing() as session:
            return transitions.release_node_leases(session, None if everyone else node)

    def reclaim_expired_leases(self, now: datetime) -> int:
        """Clear leases that ran out (their owner died); claims ignore them anyway."""
        with self.writing() as session:
            return transitions.reclaim_expired_leases(session, now)

    def note_processing_error(self, message_id: str, *, limit: int | None = None) -> bool:
        """Count a crash of our code on this message; park it as corrupt at the limit
        (``limit`` errors; default :data:`transitions.MAX_PROCESSING_ERRORS`)."""
        with self.writing() as session:
            return transitions.note_processing_error(session, message_id, limit=limit)

    # -- admin --------------------------------------------------------------------------

    def get_message(self, message_id: str) -> MessageView:
        with self.reading() as session:
            message = _message(session, message_id)
            recipients = session.scalars(
                select(Recipient).where(Recipient.message_id == message_id).order_by(Recipient.id)
            ).all()
            return message_view(message, recipients)

    def set_state(self, message_id: str, state: MessageState, *, reason: str | None = None) -> None:
        with self.writing() as session:
            _message(session, message_id)
            transitions.set_message_state(session, Message.id == message_id, state,
                                          reason=reason)

    def destroy_body(self, message_id: str, *, now: datetime | None = None) -> None:
        """Crypto-shred: drop the wrapped key and the ciphertext, keep the metadata."""
        with self.writing() as session:
            _message(session, message_id)
            transitions.shred_bodies(session, [message_id], now or utcnow())

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


def _message(session: Session, message_id: str) -> Message:
    message = session.get(Message, message_id)
    if message is None:
        raise UnknownMessage(f"no message {message_id}")
    return message
