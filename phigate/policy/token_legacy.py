"""The first token format (v1): the claims themselves, in clear, followed by a MAC.

v1 tokens carry the recipient's address readably (base32 is an encoding, not a cipher), so
phigate no longer issues them (:mod:`phigate.policy.tokens` issues opaque v2 tokens). Mail
sent before the upgrade still holds them, so they are accepted until the cut-off migration
0005 recorded. The claims encoding also serves v2 as the canonical input of the keyed id.

header byte: version (3 bits) | kind (1 bit) | scope code (2 bits) | campaign? | message id?
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

KINDS = ("unsubscribe", "verp")
VERSION = 1
MAC_BYTES = 10
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


def legacy_mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, _MAC_CONTEXT + payload, hashlib.sha256).digest()[:MAC_BYTES]


def make_legacy(key: bytes, claims: TokenClaims) -> bytes:
    """The raw bytes of a v1 token (what phigate issued before; kept for tests and tools)."""
    payload = encode_claims(claims)
    return payload + legacy_mac(key, payload)


def parse_legacy(key: bytes, raw: bytes) -> TokenClaims | None:
    """The claims of a genuine v1 token (already base32-decoded), else None."""
    if len(raw) <= MAC_BYTES:
        return None
    payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if not hmac.compare_digest(mac, legacy_mac(key, payload)):
        return None
    return decode_claims(payload)


def encode_claims(claims: TokenClaims) -> bytes:
    if claims.kind not in KINDS:
        raise ValueError(f"unknown token kind {claims.kind!r}")
    scope_code = _SCOPE_CODES.get(claims.scope, _SCOPE_STRING)
    header = (
        VERSION << 5
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


def decode_claims(payload: bytes) -> TokenClaims | None:
    # Only reached for payloads with a valid MAC, so malformed input means a bug or a
    # key shared with something else: refuse rather than guess.
    if not payload:
        return None
    header, rest = payload[0], payload[1:]
    if header >> 5 != VERSION:
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
