"""The audit key: one secret file beside the master key, never in the database.

From its 32 random bytes two keys are derived (HKDF-SHA256, separate labels):

- the HMAC-SHA256 key that chains the entries, so that rewriting entries and recomputing
  their hashes needs the key, not just write access to the database;
- an Ed25519 key that signs checkpoints (head index and hash). Its public half, printed by
  ``phigate init`` and ``phigate audit key``, lets a machine that never holds the secret
  check a checkpoint it received.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from phigate.errors import ConfigError

KEY_BYTES = 32
_MAC_LABEL = b"phigate audit chain hmac v1"
_SIGN_LABEL = b"phigate audit checkpoint ed25519 v1"


def _derive(secret: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret)


class AuditKey:
    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEY_BYTES:
            raise ValueError(f"an audit key is {KEY_BYTES} bytes")
        self._mac_key = _derive(secret, _MAC_LABEL)
        self._signing = Ed25519PrivateKey.from_private_bytes(_derive(secret, _SIGN_LABEL))

    @classmethod
    def load(cls, path: Path) -> AuditKey:
        """``[audit] key_file``: 64 hex digits (surrounding whitespace ignored)."""
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or "not a text file"
            raise ConfigError(f"[audit] key_file: cannot read {path}: {reason}") from None
        try:
            secret = bytes.fromhex(text)
        except ValueError:
            secret = b""
        if len(secret) != KEY_BYTES:
            raise ConfigError(f"[audit] key_file: {path} does not hold {KEY_BYTES} bytes in hex")
        return cls(secret)

    def mac(self, canonical: bytes) -> str:
        return hmac.new(self._mac_key, canonical, hashlib.sha256).hexdigest()

    def sign(self, data: bytes) -> str:
        return self._signing.sign(data).hex()

    @property
    def public_hex(self) -> str:
        return self._signing.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def signature_valid(public_hex: str, data: bytes, signature_hex: str) -> bool:
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
        public.verify(bytes.fromhex(signature_hex), data)
    except (ValueError, InvalidSignature):
        return False
    return True


def generate_audit_key() -> bytes:
    """Content for a new ``[audit] key_file``."""
    return secrets.token_hex(KEY_BYTES).encode("ascii") + b"\n"
