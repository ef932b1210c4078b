"""Signed checkpoints of the audit chain, kept outside the database.

After every committed change the newest entry's index and hash are signed (Ed25519, see
:mod:`phigate.audit.keys`) and written to ``[audit] checkpoint_file``, logged as an
``audit_checkpoint`` event (the journal) and, with ``[audit] syslog``, sent to a remote
syslog. ``phigate audit verify`` checks the chain against the newest checkpoint: deleting
the newest entries, or rewriting the chain, no longer verifies. A checkpoint only ever
moves forward: a writer that read an older head never replaces a newer checkpoint.
"""

from __future__ import annotations

import fcntl
import json
import logging
import logging.handlers
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from phigate.audit.keys import AuditKey, signature_valid
from phigate.config import Settings
from phigate.observability.logs import log_event

if TYPE_CHECKING:
    from phigate.audit.log import AuditLog

log = logging.getLogger("phigate.audit")
_CONTEXT = "phigate-audit-checkpoint-v1"


@dataclass(frozen=True)
class Checkpoint:
    index: int
    hash: str
    at: str
    public_key: str
    signature: str

    def payload(self) -> bytes:
        return f"{_CONTEXT}\n{self.index}\n{self.hash}\n{self.at}".encode("ascii")

    def valid_for(self, public_hex: str) -> bool:
        return self.public_key == public_hex and signature_valid(
            public_hex, self.payload(), self.signature)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Checkpoint | None:
        try:
            raw = json.loads(text)
            return cls(int(raw["index"]), str(raw["hash"]), str(raw["at"]),
                       str(raw["public_key"]), str(raw["signature"]))
        except (ValueError, KeyError, TypeError):
            return None


def sign_checkpoint(key: AuditKey, index: int, head_hash: str, at: datetime) -> Checkpoint:
    unsigned = Checkpoint(index, head_hash, at.isoformat(), key.public_hex, "")
    return Checkpoint(index, head_hash, unsigned.at, key.public_hex,
                      key.sign(unsigned.payload()))


class CheckpointFile:
    """``[audit] checkpoint_file`` (one JSON object), its lock file, and the extra copies."""

    def __init__(self, path: Path, key: AuditKey, *, syslog: str = "") -> None:
        self.path = path
        self._key = key
        self._syslog: logging.Handler | None = None
        if syslog:
            host, _, port = syslog.rpartition(":")
            self._syslog = logging.handlers.SysLogHandler(address=(host, int(port)))

    def newest(self) -> Checkpoint | None:
        try:
            return Checkpoint.from_json(self.path.read_text(encoding="ascii"))
        except (OSError, UnicodeDecodeError):
            return None

    def publish(self, index: int, head_hash: str, at: datetime) -> Checkpoint | None:
        """Sign and store the head; None when the file already names a newer one."""
        checkpoint = sign_checkpoint(self._key, index, head_hash, at)
        lock = os.open(f"{self.path}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.newest()
            if current is not None and current.index >= index:
                return None
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as stream:
                stream.write(checkpoint.to_json() + "\n")
            os.replace(temporary, self.path)
        finally:
            os.close(lock)  # releases the lock
        log_event(log, "audit_checkpoint", index=index, hash=head_hash, at=checkpoint.at,
                  signature=checkpoint.signature)
        if self._syslog is not None:
            self._syslog.emit(logging.LogRecord(
                "phigate.audit", logging.INFO,
                __file__, 0, "phigate audit_checkpoint %s", (checkpoint.to_json(),), None))
        return checkpoint


def audit_log_for(settings: Settings, engine: Engine) -> AuditLog:
    """The audit log as ``[audit]`` configures it (key and checkpoint file, or neither)."""
    from phigate.audit.log import AuditLog

    if not settings.audit.key_file:
        return AuditLog(engine)
    key = AuditKey.load(Path(settings.audit.key_file))
    return AuditLog(engine, key, CheckpointFile(checkpoint_path(settings), key,
                                                syslog=settings.audit.syslog))


def checkpoint_path(settings: Settings) -> Path:
    return Path(settings.audit.checkpoint_file or settings.server.state_dir / "audit.checkpoint")
