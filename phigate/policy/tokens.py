"""Opaque tokens for unsubscribe links and VERP return paths.

A token is ``base32(header, id, mac)`` in lowercase without padding, 20 bytes = 32
characters whatever the recipient:

- ``header``: format version 2 and the kind (unsubscribe | verp);
- ``id``: 9 bytes of HMAC-SHA256 over the claims (kind, recipient, scope, campaign,
  message id) under the token key: a keyed identifier, so the same claims always give
  the same token (one token per recipient and campaign, counted once) and nothing about
  the address can be read from it;
- ``mac``: 10 bytes (80 bits) of HMAC-SHA256 over header and id, so a forged or mangled
  token is refused before the database is asked.

The id is mapped to its claims in the database (:class:`TokenRegistry`, table
``issued_tokens``), with an expiry refreshed whenever the token is issued again. So a
token survives MTAs that change the case of local parts, is safe in a URL path and in an
address local part (``[a-z2-7]``), and a VERP address always fits RFC 5321's 64
characters. The kind is covered by the MAC, so a VERP token cannot be replayed as an
unsubscribe.

Tokens issued before this format (v1, :mod:`phigate.policy.token_legacy`) carried the
address; they are accepted until the registry's ``legacy_until`` and never issued again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from phigate.errors import ConfigError
from phigate.policy.token_legacy import KINDS, TokenClaims, encode_claims, parse_legacy

__all__ = ["KINDS", "TokenClaims", "TokenRegistry", "TokenSigner", "MemoryTokenRegistry"]

VERP_PREFIX = "bounces+"
UNSUBSCRIBE_PREFIX = "unsubscribe+"

_VERSION = 2
_ID_BYTES = 9
_MAC_BYTES = 10  # 80 bits: forging needs ~2**79 online guesses, each a mail or HTTP request
_TOKEN_BYTES = 1 + _ID_BYTES + _MAC_BYTES
_MIN_KEY_BYTES = 16
_ID_CONTEXT = b"phigate-token-id-v2\x00"
_MAC_CONTEXT = b"phigate-token-v2\x00"
#: How long a token is honoured after it was last issued. Bounces come back within days;
#: people unsubscribe from mail they kept for months.
TOKEN_LIFETIME = {"verp": timedelta(days=60), "unsubscribe": timedelta(days=400)}
#: Issuing a token again within this time writes nothing (retries, batches).
_REFRESH = timedelta(days=1)
_CACHE_LIMIT = 100_000


class TokenRegistry(Protocol):
    """Where token ids are mapped to their claims. Ids are lowercase hex strings."""

    def record(self, token_id: str, claims: TokenClaims, issued_at: datetime,
               expires_at: datetime) -> None:
        """Store (or extend the expiry of) ``token_id``; idempotent, safe concurrently."""

    def lookup(self, token_id: str) -> tuple[TokenClaims, datetime] | None:
        """The claims and expiry of ``token_id``, or None when unknown."""

    def legacy_until(self) -> datetime | None:
        """Until when v1 tokens are accepted; None: never."""


class MemoryTokenRegistry:
    """A registry in this process only: for tests and one-process tools."""

    def __init__(self, legacy_until: datetime | None = None) -> None:
        self._rows: dict[str, tuple[TokenClaims, datetime]] = {}
        self._legacy_until = legacy_until

    def record(self, token_id: str, claims: TokenClaims, issued_at: datetime,
               expires_at: datetime) -> None:
        known = self._rows.get(token_id)
        if known is None or known[1] < expires_at:
            self._rows[token_id] = (claims, expires_at)

    def lookup(self, token_id: str) -> tuple[TokenClaims, datetime] | None:
        return self._rows.get(token_id)

    def legacy_until(self) -> datetime | None:
        return self._legacy_until


@dataclass(frozen=True)
class TokenRecord:
    """One registry row to write: a token's id, its claims and its lifetime."""

    token_id: str
    claims: TokenClaims
    issued_at: datetime
    expires_at: datetime


class TokenSigner:
    """Makes and checks tokens with one secret key (at least 16 bytes) and a registry."""

    def __init__(self, key: bytes, registry: TokenRegistry | None = None, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if len(key) < _MIN_KEY_BYTES:
            raise ValueError(f"token key must be at least {_MIN_KEY_BYTES} bytes")
        self._key = key
        self._registry: TokenRegistry = registry or MemoryTokenRegistry()
        self._clock = clock
        self._recorded: dict[str, datetime] = {}  # id -> when this process last recorded it
        self._legacy_until: tuple[datetime | None] | None = None

    @classmethod
    def from_key_file(cls, path: Path, registry: TokenRegistry | None = None) -> TokenSigner:
        """Load ``[policy] token_key_file`` (raw bytes; surrounding whitespace ignored)."""
        try:
            key = path.read_bytes().strip()
        except OSError as error:
            raise ConfigError(f"[policy] token_key_file: cannot read {path}: "
                              f"{error.strerror}") from None
        if len(key) < _MIN_KEY_BYTES:
            raise ConfigError(f"[policy] token_key_file: key in {path} is shorter than "
                              f"{_MIN_KEY_BYTES} bytes")
        return cls(key, registry)

    @property
    def registry(self) -> TokenRegistry:
        return self._registry

    def make(self, claims: TokenClaims) -> str:
        """The token for ``claims``, recorded in the registry (writes at most once a day)."""
        token_id = self._id(claims)
        body = bytes([_VERSION << 5 | KINDS.index(claims.kind) << 4]) + token_id
        self._record(token_id.hex(), claims)
        return base64.b32encode(body + self._mac(body)).decode("ascii").lower()

    def unrecorded(self, claims: Iterable[TokenClaims]) -> list[TokenRecord]:
        """The rows :meth:`make` would write for ``claims`` now (those not recorded by this
        process within a day), for a caller that writes them in a transaction of its own
        and then calls :meth:`note_recorded`; ``make`` then writes nothing for them."""
        now = self._clock()
        records: dict[str, TokenRecord] = {}
        for each in claims:
            token_id = self._id(each).hex()
            last = self._recorded.get(token_id)
            if (last is None or now - last >= _REFRESH) and token_id not in records:
                records[token_id] = TokenRecord(token_id, each, now,
                                                now + TOKEN_LIFETIME[each.kind])
        return list(records.values())

    def note_recorded(self, records: Iterable[TokenRecord]) -> None:
        """``records`` are committed to the registry (see :meth:`unrecorded`)."""
        for record in records:
            self._remember(record.token_id, record.issued_at)

    def _id(self, claims: TokenClaims) -> bytes:
        return hmac.new(self._key, _ID_CONTEXT + encode_claims(claims),
                        hashlib.sha256).digest()[:_ID_BYTES]

    def looks_genuine(self, token: str, *, kind: str | None = None) -> bool:
        """The MAC verifies (and the kind matches): no database lookup, for hot paths
        such as RCPT. :meth:`parse` still decides whether the token is known and valid."""
        raw = _b32decode(token)
        if raw is None:
            return False
        if raw[0] >> 5 == _VERSION:
            return self._v2_id(raw, kind) is not None
        return self._legacy(raw, kind) is not None

    def parse(self, token: str, *, kind: str | None = None) -> TokenClaims | None:
        """The claims of a genuine, known, unexpired token, else None (forged, mangled,
        truncated, unknown, expired, other kind). One read of the registry."""
        raw = _b32decode(token)
        if raw is None:
            return None
        if raw[0] >> 5 != _VERSION:
            return self._legacy(raw, kind)
        token_id = self._v2_id(raw, kind)
        if token_id is None:
            return None
        found = self._registry.lookup(token_id)
        if found is None or found[1] <= self._clock():
            return None
        claims = found[0]
        return claims if KINDS[raw[0] >> 4 & 1] == claims.kind else None

    def token_id(self, token: str) -> str | None:
        """The registry id of a genuine v2 token (for de-duplication), else None."""
        raw = _b32decode(token)
        return None if raw is None else self._v2_id(raw, None)

    def _v2_id(self, raw: bytes, kind: str | None) -> str | None:
        if len(raw) != _TOKEN_BYTES or raw[0] & 0b1111 or raw[0] >> 5 != _VERSION:
            return None
        body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        if kind is not None and KINDS[raw[0] >> 4 & 1] != kind:
            return None
        return body[1:].hex()

    def _legacy(self, raw: bytes, kind: str | None) -> TokenClaims | None:
        if self._legacy_until is None:  # constant per installation: ask once
            self._legacy_until = (self._registry.legacy_until(),)
        until = self._legacy_until[0]
        if until is None or until <= self._clock():
            return None
        claims = parse_legacy(self._key, raw)
        if claims is None or (kind is not None and claims.kind != kind):
            return None
        return claims

    def _record(self, token_id: str, claims: TokenClaims) -> None:
        now = self._clock()
        last = self._recorded.get(token_id)
        if last is not None and now - last < _REFRESH:
            return
        self._registry.record(token_id, claims, now, now + TOKEN_LIFETIME[claims.kind])
        self._remember(token_id, now)

    def _remember(self, token_id: str, now: datetime) -> None:
        if len(self._recorded) >= _CACHE_LIMIT:
            self._recorded.clear()
        self._recorded[token_id] = now

    def derived_key(self, context: bytes) -> bytes:
        """A key for another purpose (open-pixel tokens), derived from this one."""
        return hmac.new(self._key, b"phigate-derived\x00" + context, hashlib.sha256).digest()

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, _MAC_CONTEXT + body, hashlib.sha256).digest()[:_MAC_BYTES]


def generate_token_key() -> bytes:
    """Content for a new ``token_key_file``: 32 random bytes, hex (a text file admins can copy)."""
    return secrets.token_hex(32).encode("ascii") + b"\n"


def verp_address(signer: TokenSigner, claims: TokenClaims, bounce_domain: str) -> str:
    """The envelope sender for one recipient: ``bounces+TOKEN@bounce_domain``."""
    if claims.kind != "verp":
        raise ValueError("verp_address needs claims of kind 'verp'")
    return f"{VERP_PREFIX}{signer.make(claims)}@{bounce_domain}"


def unsubscribe_headers(
    signer: TokenSigner,
    recipient: str,
    campaign: str | None,
    public_url: str,
    mailto_domain: str,
) -> dict[str, str]:
    """``List-Unsubscribe`` (RFC 2369) and, with an https URL, ``List-Unsubscribe-Post``
    (RFC 8058 one-click). Without ``public_url`` only the mailto form is offered."""
    token = signer.make(TokenClaims(kind="unsubscribe", recipient=recipient, campaign=campaign))
    targets = []
    if public_url:
        targets.append(f"<{public_url.rstrip('/')}/u/{token}>")
    targets.append(f"<mailto:{UNSUBSCRIBE_PREFIX}{token}@{mailto_domain}>")
    headers = {"List-Unsubscribe": ", ".join(targets)}
    if public_url.startswith("https://"):
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


def token_in_address(address: str) -> tuple[str, str] | None:
    """Split ``bounces+TOKEN@…`` / ``unsubscribe+TOKEN@…`` into (kind, token); else None.

    Matching is case-insensitive because some MTAs lowercase (or uppercase) local parts.
    """
    local, at, _domain = address.strip().strip("<>").rpartition("@")
    if not at:
        return None
    lowered = local.lower()
    for prefix, kind in ((VERP_PREFIX, "verp"), (UNSUBSCRIBE_PREFIX, "unsubscribe")):
        if lowered.startswith(prefix) and len(local) > len(prefix):
            return kind, local[len(prefix):]
    return None


def _b32decode(token: str) -> bytes | None:
    text = token.strip().upper()
    if not text or not text.isascii():
        return None
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return None
    return raw or None
