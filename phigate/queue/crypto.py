"""Envelope encryption of message bodies (AES-256-GCM).

Each message gets its own random 256-bit data key. The body is sealed with it (the message id
is bound in as associated data, so a ciphertext cannot be moved to another row), and the data
key is wrapped with the master key (RFC 3394 AES key wrap). The master key lives in a file
outside the database, so a copy of the database alone reveals nothing, and destroying one
message's wrapped key makes that body unreadable for good.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from phigate.errors import ConfigError, PhigateError

KEY_BYTES = 32
NONCE_BYTES = 12


class DecryptionError(PhigateError):
    """A body cannot be decrypted: wrong master key, purged key or tampered ciphertext."""


@dataclass(frozen=True)
class SealedBody:
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes
    key_id: str


class MasterKey:
    """The key-encryption key. ``key_id`` names it in rows so a rotation can find old rows."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("a master key is 32 bytes")
        self._key = key
        self.key_id = hashlib.sha256(b"phigate-master-key-id" + key).hexdigest()[:16]
        #: When a body was last unsealed with this key (``/healthz`` shows it); None: never.
        self.last_unsealed_at: datetime | None = None

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(KEY_BYTES))

    @classmethod
    def load(cls, path: Path) -> MasterKey:
        try:
            text = path.read_bytes().strip()
        except OSError as error:
            raise ConfigError(f"[storage] master_key_file: cannot read {path}: "
                              f"{error.strerror}") from None
        try:
            key = base64.b64decode(text, validate=True)
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            raise ConfigError(f"[storage] master_key_file: {path} does not hold a base64 "
                              "32-byte key")
        return cls(key)

    def write(self, path: Path) -> None:
        """Write the key base64-encoded to a new file readable by its owner only."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "wb") as stream:
            stream.write(base64.b64encode(self._key) + b"\n")

    def derive(self, label: bytes) -> bytes:
        """A 32-byte key for one purpose (HMAC-SHA256 of ``label``), e.g. pickup tokens."""
        return hmac.new(self._key, b"phigate-derive:" + label, hashlib.sha256).digest()

    def seal(self, plaintext: bytes, *, associated_data: bytes) -> SealedBody:
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, associated_data)
        return SealedBody(aes_key_wrap(self._key, data_key), nonce, ciphertext, self.key_id)

    def open(self, body: SealedBody, *, associated_data: bytes) -> bytes:
        try:
            data_key = aes_key_unwrap(self._key, body.wrapped_key)
            plaintext = AESGCM(data_key).decrypt(body.nonce, body.ciphertext, associated_data)
        except (InvalidUnwrap, InvalidTag, ValueError):
            raise DecryptionError("message body cannot be decrypted (wrong master key, purged "
                                  "or tampered)") from None
        self.last_unsealed_at = datetime.now(UTC)
        return plaintext
