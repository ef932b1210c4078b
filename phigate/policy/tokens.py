"""HMAC-signed tokens for unsubscribe links and VERP return paths.

A token carries its claims (kind, recipient, scope, campaign, message id) in a compact
binary encoding followed by a truncated HMAC-SHA256 over them, written in lowercase
base32 without padding. So a token

- is validated with nothing but the key: no database lookup, nothing the client says
  is trusted beyond the bytes the MAC covers;
- survives MTAs that lowercase local parts (base32 decodes the same in either case)
  and is safe in a URL path and in an address local part (``[a-z2-7]`` only);
- stays short: 1 header byte, length-prefixed strings and an 80-bit MAC, so a VERP
  address for a recipient of up to 22 characters fits RFC 5321's 64-character local part.
  Longer recipients give longer tokens; most MTAs accept them, strict ones may not.

The kind is covered by the MAC, so a VERP token cannot be replayed as an unsubscribe.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from phigate.errors import ConfigError

KINDS = ("unsubscribe", "verp")
VERP_PREFIX = "bounces+"
UNSUBSCRIBE_PREFIX = "unsubscribe+"

_VERSION = 1
_MAC_BYTES = 10  # 80 bits: forging needs ~2**79 online guesses, each a mail or HTTP request
_MIN_KEY_BYTES = 16
_MAC_CONTEXT = b"phigate-token-v1\x00"
# Scope codes in the header byte; anything else is carried as a string.
_SCOPE_CODES = {"marketing": 0, "all": 1}
_SCOPE_STRING = 3


@dataclass(frozen=True)
class TokenClaims:
    kind: str  # "unsubscribe" | "verp"
    recipient: str
    scope: str = "marketing"
    campaign: str | None = None
    message_id: str | None = None


class TokenSigner:
    """Makes and checks tokens with one secret key (at least 16 bytes)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < _MIN_KEY_BYTES:
            raise ValueError(f"token key must be at least {_MIN_KEY_BYTES} bytes")
        self._key = key

    @classmethod
    def from_key_file(cls, path: Path) -> TokenSigner:
        """Load ``[policy] token_key_file`` (raw bytes; surrounding whitespace ignored)."""
        try:
            key = path.read_bytes().strip()
        except OSError as error:
            raise ConfigError(f"[policy] token_key_file: cannot read {path}: "
                              f"{error.strerror}") from None
        if len(key) < _MIN_KEY_BYTES:
            raise ConfigError(f"[policy] token_key_file: key in {path} is shorter than "
                              f"{_MIN_KEY_BYTES} bytes")
        return cls(key)

    def make(self, claims: TokenClaims) -> str:
        payload = _encode(claims)
        raw = payload + self._mac(payload)
        return base64.b32encode(raw).decode("ascii").rstrip("=").lower()

    def parse(self, token: str, *, kind: str | None = None) -> TokenClaims | None:
        """The claims of a genuine token, else None (forged, mangled, truncated, other kind)."""
        raw = _b32decode(token)
        if raw is None or len(raw) <= _MAC_BYTES:
            return None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        claims = _decode(payload)
        if claims is None or (kind is not None and claims.kind != kind):
            return None
        return claims

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, _MAC_CONTEXT + payload, hashlib.sha256).digest()[:_MAC_BYTES]


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


# -- encoding ------------------------------------------------------------------------------
# header byte: version (3 bits) | kind (1 bit) | scope code (2 bits) | campaign? | message id?


def _encode(claims: TokenClaims) -> bytes:
    if claims.kind not in KINDS:
        raise ValueError(f"unknown token kind {claims.kind!r}")
    scope_code = _SCOPE_CODES.get(claims.scope, _SCOPE_STRING)
    header = (
        _VERSION << 5
        | KINDS.index(claims.kind) << 4
        | scope_code << 2
        | (claims.campaign is not None) << 1
        | (claims.message_id is not None)
    )
    parts = [bytes([header]), _field(claims.recipient)]
    if scope_code == _SCOPE_STRING:
        parts.append(_field(claims.scope))
    if claims.campaign is not None:
        parts.append(_field(claims.campaign))
    if claims.message_id is not None:
        parts.append(_field(claims.message_id))
    return b"".join(parts)


def _field(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 255:
        raise ValueError("token field longer than 255 bytes")
    return bytes([len(data)]) + data


def _decode(payload: bytes) -> TokenClaims | None:
    # Only reached for payloads with a valid MAC, so malformed input means a bug or a
    # key shared with something else: refuse rather than guess.
    header, rest = payload[0], payload[1:]
    if header >> 5 != _VERSION:
        return None
    kind = KINDS[header >> 4 & 1]
    scope_code = header >> 2 & 3
    fields: list[str] = []
    while rest:
        length = rest[0]
        if len(rest) < 1 + length:
            return None
        try:
            fields.append(rest[1 : 1 + length].decode("utf-8"))
        except UnicodeDecodeError:
            return None
        rest = rest[1 + length :]
    expected = 1 + (scope_code == _SCOPE_STRING) + (header >> 1 & 1) + (header & 1)
    if len(fields) != expected or scope_code not in (*_SCOPE_CODES.values(), _SCOPE_STRING):
        return None
    values = iter(fields)
    recipient = next(values)
    if scope_code == _SCOPE_STRING:
        scope = next(values)
    else:
        scope = next(name for name, code in _SCOPE_CODES.items() if code == scope_code)
    campaign = next(values) if header >> 1 & 1 else None
    message_id = next(values) if header & 1 else None
    return TokenClaims(kind, recipient, scope, campaign, message_id)


def _b32decode(token: str) -> bytes | None:
    text = token.strip().upper()
    if not text or not text.isascii():
        return None
    try:
        return base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return None
