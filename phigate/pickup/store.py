"""Store operations of secure pickup (all blocking: call them through ``asyncio.to_thread``).

Every change that an auditor needs (notice, code requested, code failure, lockout, view,
download, reply, expiry, delete) writes its audit entry in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from phigate.audit.log import Actor, AuditLog
from phigate.pickup.credentials import PickupKeys, session_hash
from phigate.queue.crypto import DecryptionError, SealedBody
from phigate.queue.models import MessageClass
from phigate.queue.pickup_models import Pickup, PickupState
from phigate.queue.store import SqlQueueStore

CODE_TTL = timedelta(minutes=10)
MAX_FAILURES = 5
SESSION_TTL = timedelta(minutes=15)


class PickupEvent(StrEnum):
    NOTICE_SENT = "pickup_notice_sent"
    CODE_REQUESTED = "pickup_code_requested"
    CODE_FAILURE = "pickup_code_failure"
    LOCKOUT = "pickup_lockout"
    VIEW = "pickup_view"
    DOWNLOAD = "pickup_download"
    REPLY = "pickup_reply"
    LOGOUT = "pickup_logout"
    EXPIRED = "pickup_expired"
    DELETED = "pickup_deleted"
    SHREDDED = "pickup_key_destroyed"


class CodeCheck(StrEnum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"  # this failure locked it, or it was locked already


@dataclass(frozen=True)
class PickupView:
    id: int
    message_id: str
    address: str
    sender: str
    message_class: MessageClass
    state: PickupState
    expires_at: datetime
    question: str | None
    codes_sent: int
    last_code_at: datetime | None


class PickupStore:
    def __init__(self, store: SqlQueueStore) -> None:
        self._store = store
        self._master_key = store.master_key
        self.keys = PickupKeys(store.master_key.derive(b"pickup"))
        self._audit = AuditLog(store.engine)

    def seal(self, body: bytes, *, token_hash: str) -> SealedBody:
        return self._master_key.seal(body, associated_data=_aad(token_hash))

    def record(self, session: Session, event: PickupEvent, row: Pickup, ip: str | None,
               detail: Mapping[str, Any] | None = None) -> None:
        self._audit.record(Actor("pickup", ip), event.value, message_id=row.message_id,
                           detail={"pickup": row.id, **(detail or {})}, session=session)

    def find(self, token: str, now: datetime) -> PickupView | None:
        """The readable (or locked) pickup ``token`` names; None for forged, unknown,
        expired or destroyed ones."""
        token_hash = self.keys.token_hash(token)
        if token_hash is None:
            return None
        with self._store.reading() as session:
            row = session.scalar(select(Pickup).where(Pickup.token_hash == token_hash))
            if row is None or row.expires_at <= now or not (
                    row.state.readable or row.state is PickupState.LOCKED):
                return None
            return _view(row)

    def issue_code(self, pickup_id: int, code: str, now: datetime, ip: str | None) -> None:
        with self._store.writing() as session:
            row = _row(session, pickup_id)
            row.code_hash = self.keys.code_hash(pickup_id, code)
            row.code_expires_at = now + CODE_TTL
            row.codes_sent += 1
            row.last_code_at = now
            self.record(session, PickupEvent.CODE_REQUESTED, row, ip)

    def check_code(self, pickup_id: int, code: str, answer_ok: bool, now: datetime,
                   ip: str | None) -> CodeCheck:
        """One try: right code (and second factor) within 10 minutes, or one failure more;
        the fifth failure locks the pickup for good."""
        with self._store.writing() as session:
            row = _row(session, pickup_id)
            if row.state is PickupState.LOCKED or row.failures >= MAX_FAILURES:
                return CodeCheck.LOCKED
            valid = (row.code_hash is not None and row.code_expires_at is not None
                     and now < row.code_expires_at
                     and row.code_hash == self.keys.code_hash(pickup_id, code))
            if valid and answer_ok:
                row.code_hash = None  # one time
                row.failures = 0
                return CodeCheck.OK
            row.failures += 1
            self.record(session, PickupEvent.CODE_FAILURE, row, ip,
                        {"failures": row.failures})
            if row.failures >= MAX_FAILURES:
                row.state = PickupState.LOCKED
                row.code_hash = row.session_hash = None
                self.record(session, PickupEvent.LOCKOUT, row, ip)
                return CodeCheck.LOCKED
            return CodeCheck.WRONG

    def open_session(self, pickup_id: int, value_hash: str, now: datetime) -> None:
        with self._store.writing() as session:
            row = _row(session, pickup_id)
            row.session_hash = value_hash
            row.session_expires_at = now + SESSION_TTL

    def session_ok(self, pickup_id: int, cookie: str | None, now: datetime) -> bool:
        if not cookie:
            return False
        with self._store.reading() as session:
            row = _row(session, pickup_id)
            return (row.session_hash is not None and row.session_expires_at is not None
                    and now < row.session_expires_at
                    and row.session_hash == session_hash(cookie))

    def close_session(self, pickup_id: int, ip: str | None) -> None:
        with self._store.writing() as session:
            row = _row(session, pickup_id)
            row.session_hash = row.session_expires_at = None
            self.record(session, PickupEvent.LOGOUT, row, ip)

    def open_body(self, pickup_id: int) -> bytes:
        """The message as submitted; DecryptionError once its key is destroyed."""
        with self._store.reading() as session:
            row = _row(session, pickup_id)
            if row.wrapped_key is None or row.ciphertext is None:
                raise DecryptionError("pickup key destroyed")
            sealed = SealedBody(row.wrapped_key, row.nonce, row.ciphertext, row.key_id)
            aad = _aad(row.token_hash)
        return self._master_key.open(sealed, associated_data=aad)

    def note(self, pickup_id: int, event: PickupEvent, now: datetime, ip: str | None,
             detail: Mapping[str, Any] | None = None) -> None:
        """A view, download or reply: audited, and the state moves on."""
        with self._store.writing() as session:
            row = _row(session, pickup_id)
            if event is PickupEvent.VIEW:
                row.viewed_at = row.viewed_at or now
                if row.state is PickupState.WAITING:
                    row.state = PickupState.VIEWED
            elif event is PickupEvent.REPLY:
                row.replied_at = now
                row.state = PickupState.REPLIED
            self.record(session, event, row, ip, detail)

    def reply_allowed(self, pickup_id: int) -> bool:
        with self._store.reading() as session:
            return _row(session, pickup_id).replied_at is None

    def destroy(self, pickup_id: int, state: PickupState, event: PickupEvent, now: datetime,
                ip: str | None = None) -> None:
        """Destroy the pickup's data key (and its ciphertext): the body is gone for good."""
        with self._store.writing() as session:
            row = _row(session, pickup_id)
            row.wrapped_key = row.ciphertext = None
            row.code_hash = row.session_hash = None
            row.state = state
            row.destroyed_at = now
            self.record(session, event, row, ip)

    def expire_due(self, now: datetime) -> int:
        with self._store.reading() as session:
            ids = list(session.scalars(select(Pickup.id).where(
                Pickup.expires_at <= now, Pickup.wrapped_key.is_not(None))))
        for pickup_id in ids:
            self.destroy(pickup_id, PickupState.EXPIRED, PickupEvent.EXPIRED, now)
        return len(ids)

    def counts(self) -> dict[str, int]:
        with self._store.reading() as session:
            rows = session.execute(select(Pickup.state, func.count()).group_by(Pickup.state))
            return {str(state): int(count) for state, count in rows}

    def expire_now(self, pickup_id: int, now: datetime) -> None:
        """Tests and admins: make a pickup due for expiry."""
        with self._store.writing() as session:
            session.execute(update(Pickup).where(Pickup.id == pickup_id)
                            .values(expires_at=now))


def _aad(token_hash: str) -> bytes:
    return b"pickup:" + token_hash.encode("ascii")


def _row(session: Session, pickup_id: int) -> Pickup:
    row = session.get(Pickup, pickup_id)
    if row is None:
        raise LookupError("no such pickup")
    return row


def _view(row: Pickup) -> PickupView:
    return PickupView(id=row.id, message_id=row.message_id, address=row.address,
                      sender=row.sender, message_class=row.message_class, state=row.state,
                      expires_at=row.expires_at, question=row.question,
                      codes_sent=row.codes_sent, last_code_at=row.last_code_at)
