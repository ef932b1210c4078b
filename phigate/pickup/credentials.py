"""Pickup tokens, one-time codes and session ids: random, keyed, stored only as hashes.

A token is ``base32(16 random bytes | 10-byte HMAC of them)``: the MAC is checked with the
key alone, so forged or mangled tokens are refused before the database is asked; the row
found by the hash of the random part binds it to one recipient of one message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

_RANDOM_BYTES = 16
_MAC_BYTES = 10
TOKEN_LENGTH = 42  # base32 of 26 bytes, without padding
CODE_DIGITS = 6


@dataclass(frozen=True)
class NewToken:
    token: str
    token_hash: str


class PickupKeys:
    """Keyed hashing for tokens and codes (the key is derived from the master key)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("a pickup key is at least 32 bytes")
        self._key = key

    def new_token(self) -> NewToken:
        raw = secrets.token_bytes(_RANDOM_BYTES)
        token = base64.b32encode(raw + self._mac(raw)).decode("ascii").rstrip("=").lower()
        return NewToken(token, _hash(raw))

    def token_hash(self, token: str) -> str | None:
        """The lookup hash of a genuine token; None for anything we did not issue."""
        if len(token) != TOKEN_LENGTH or not token.isascii():
            return None
        try:
            data = base64.b32decode(token.upper() + "=" * 6)
        except ValueError:
            return None
        raw, mac = data[:_RANDOM_BYTES], data[_RANDOM_BYTES:]
        if not hmac.compare_digest(mac, self._mac(raw)):
            return None
        return _hash(raw)

    def code_hash(self, pickup_id: int, code: str) -> str:
        message = f"code:{pickup_id}:{code}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _mac(self, raw: bytes) -> bytes:
        return hmac.new(self._key, b"token:" + raw, hashlib.sha256).digest()[:_MAC_BYTES]


def new_code() -> str:
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


def new_session() -> tuple[str, str]:
    """(cookie value, its hash for the row)."""
    value = secrets.token_urlsafe(32)
    return value, session_hash(value)


def session_hash(value: str) -> str:
    return hashlib.sha256(b"session:" + value.encode("utf-8", "replace")).hexdigest()


def _hash(raw: bytes) -> str:
    return hashlib.sha256(b"pickup-token:" + raw).hexdigest()
