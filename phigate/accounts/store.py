"""Submission accounts: who may relay, as which senders, with which message classes."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import sessionmaker

from phigate.accounts.passwords import hash_password, verify_password
from phigate.clock import utcnow
from phigate.errors import UserError
from phigate.queue.db import read_only
from phigate.queue.models import MessageClass, User

MESSAGE_CLASSES = tuple(MessageClass)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,254}$")
#: How long a verified password is remembered (see :class:`VerifiedPasswords`).
DEFAULT_AUTH_CACHE_SECONDS = 300.0


@dataclass(frozen=True)
class Account:
    name: str
    senders: tuple[str, ...]
    classes: tuple[str, ...]
    disabled: bool = False
    #: Reply-To: addresses or domains allowed besides ``senders`` (the admin's choice).
    reply_to: tuple[str, ...] = ()

    @property
    def default_class(self) -> MessageClass:
        return MessageClass(self.classes[0]) if self.classes else MessageClass.TREATMENT

    def may_send_as(self, address: str) -> bool:
        """True if ``address`` is one of the account's addresses or in one of its domains."""
        address = address.strip().lower()
        if "@" not in address:
            return False
        domain = address.rpartition("@")[2]
        return any(
            address == allowed if "@" in allowed else domain == allowed
            for allowed in (s.lower() for s in self.senders)
        )


def parse_list(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


class VerifiedPasswords:
    """Passwords verified recently, remembered briefly so that a client opening a connection
    per message does not pay a scrypt check (tens of milliseconds of CPU) every time.

    Like Dovecot's auth cache, it keeps a keyed hash, never the password: an HMAC, under a
    random key made at start and held only in memory, of the user name, the password and the
    stored password hash. Including the stored hash makes a password change take effect at
    once (the old password no longer matches any entry); the account row is still read on
    every login, so removing or disabling an account takes effect at once too. Only
    successes are remembered: failures always cost a full check and count for lockouts.
    """

    def __init__(self, *, ttl_seconds: float = DEFAULT_AUTH_CACHE_SECONDS,
                 max_entries: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._expiry: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()  # authenticate() runs in worker threads

    def _digest(self, name: str, password: str, encoded: str) -> bytes:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in (name, password, encoded):
            raw = part.encode("utf-8")
            mac.update(len(raw).to_bytes(4, "big") + raw)  # unambiguous concatenation
        return mac.digest()

    def __contains__(self, credentials: tuple[str, str, str]) -> bool:
        digest = self._digest(*credentials)
        with self._lock:
            expires = self._expiry.get(digest)
            if expires is None:
                return False
            if expires <= self._clock():
                del self._expiry[digest]
                return False
            return True

    def add(self, name: str, password: str, encoded: str) -> None:
        if self.ttl_seconds <= 0 or self.max_entries <= 0:
            return
        digest = self._digest(name, password, encoded)
        with self._lock:
            self._expiry[digest] = self._clock() + self.ttl_seconds
            self._expiry.move_to_end(digest)
            while len(self._expiry) > self.max_entries:
                self._expiry.popitem(last=False)

    def __len__(self) -> int:
        return len(self._expiry)


class AccountStore:
    def __init__(self, engine: Engine, *, verified: VerifiedPasswords | None = None) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.verified = verified if verified is not None else VerifiedPasswords()
        self._readers = sessionmaker(read_only(engine), expire_on_commit=False)

    def add(
        self, name: str, password: str, *, senders: Sequence[str], classes: Sequence[str],
        reply_to: Sequence[str] = (),
    ) -> Account:
        if not _NAME.match(name):
            raise UserError(f"invalid user name {name!r}: use letters, digits and ._@+-")
        if not password:
            raise UserError("the password is empty")
        if not senders:
            raise UserError("a user needs at least one sender address or domain")
        _check_classes(classes)
        replies = _addresses_or_domains(reply_to, "--reply-to")
        with self._sessions.begin() as session:
            if session.get(User, name) is not None:
                raise UserError(f"user {name!r} exists already")
            session.add(
                User(
                    name=name,
                    password_hash=hash_password(password),
                    senders=[s.lower() for s in senders],
                    classes=list(classes) or ["treatment"],
                    created_at=utcnow(),
                    disabled=False,
                    reply_to=replies,
                )
            )
        return self.get(name) or Account(name, tuple(senders), tuple(classes))

    def update(self, name: str, *, senders: Sequence[str] | None = None,
               classes: Sequence[str] | None = None,
               reply_to: Sequence[str] | None = None) -> Account:
        """Change what an account may do; None leaves a field as it is."""
        if senders is not None and not senders:
            raise UserError("a user needs at least one sender address or domain")
        if classes is not None:
            if not classes:
                raise UserError("a user needs at least one message class")
            _check_classes(classes)
        replies = None if reply_to is None else _addresses_or_domains(reply_to, "--reply-to")
        with self._sessions.begin() as session:
            user = session.get(User, name)
            if user is None:
                raise UserError(f"no user {name!r}")
            if senders is not None:
                user.senders = [s.lower() for s in senders]
            if classes is not None:
                user.classes = list(classes)
            if replies is not None:
                user.reply_to = replies
            return _account(user)

    def remove(self, name: str) -> None:
        with self._sessions.begin() as session:
            user = session.get(User, name)
            if user is None:
                raise UserError(f"no user {name!r}")
            session.delete(user)

    def get(self, name: str) -> Account | None:
        with self._readers.begin() as session:
            user = session.get(User, name)
            return None if user is None else _account(user)

    def list(self) -> list[Account]:
        with self._readers.begin() as session:
            return [_account(u) for u in session.scalars(select(User).order_by(User.name))]

    def authenticate(self, name: str, password: str) -> Account | None:
        """The account if the password is right and the account enabled; slow on purpose."""
        with self._readers.begin() as session:
            user = session.get(User, name)
            encoded = None if user is None else user.password_hash
            account = None if user is None else _account(user)
        if encoded is None:
            # Spend the same time as a real check so timing does not reveal user names.
            verify_password(password, _DUMMY_HASH)
            return None
        if account is None or account.disabled:
            verify_password(password, encoded)  # same time as for an enabled account
            return None
        if (name, password, encoded) in self.verified:
            return account
        if not verify_password(password, encoded):
            return None
        self.verified.add(name, password, encoded)
        return account


def _account(user: User) -> Account:
    return Account(user.name, tuple(user.senders), tuple(user.classes), user.disabled,
                   reply_to=tuple(user.reply_to or ()))


def _check_classes(classes: Sequence[str]) -> None:
    unknown = [c for c in classes if c not in MESSAGE_CLASSES]
    if unknown:
        raise UserError(f"unknown message class {unknown[0]!r}: use "
                        f"{', '.join(MESSAGE_CLASSES)}")


#: An address (``local@domain``) or a bare domain, as ``senders`` and ``reply_to`` hold them.
_ADDRESS_OR_DOMAIN = re.compile(r"^(?:[^\s@<>(),;:\"\\]+@)?[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                                r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")


def _addresses_or_domains(values: Sequence[str], option: str) -> list[str]:
    cleaned = [v.strip().lower() for v in values if v.strip()]
    for value in cleaned:
        if not _ADDRESS_OR_DOMAIN.match(value):
            raise UserError(f"{option}: not an address or a domain: {value!r}")
    return cleaned


_DUMMY_HASH = hash_password("phigate-timing-equaliser")
