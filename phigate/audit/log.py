"""The tamper-evident audit log: an append-only table whose rows form a hash chain.

Each entry's hash covers its own fields and the previous entry's hash, so changing, removing
or inserting a row breaks the chain at that point, which
:func:`phigate.audit.verify.verify_chain` reports (allowing for retention's anchors).
Entries describe who did what to which message; they never hold message content.

With ``[audit] key_file`` the hash is an HMAC under a key kept outside the database (so
whoever can write the database cannot recompute the chain), and every commit that added
entries publishes a signed checkpoint of the head (:mod:`phigate.audit.checkpoint`), so
removing the newest entries is detected too. Installations from before keep their plain
SHA-256 entries; the first keyed entry seals them (it links to the last plain hash).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import Session, sessionmaker

from phigate.audit.checkpoint import CheckpointFile
from phigate.audit.keys import AuditKey
from phigate.clock import utcnow
from phigate.observability.logs import log_event
from phigate.queue.db import read_only
from phigate.queue.models import AuditEvent

log = logging.getLogger("phigate.audit")

GENESIS_HASH = "0" * 64
SYSTEM_ACTOR = "phigate"


@dataclass(frozen=True)
class Actor:
    name: str
    ip: str | None = None

    @classmethod
    def from_environment(cls) -> Actor:
        """The OS user running the command, and the SSH client address if there is one."""
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = f"uid:{os.getuid()}"
        ssh = os.environ.get("SSH_CONNECTION", "").split()
        return cls(name, ssh[0] if ssh else None)


SYSTEM = Actor(SYSTEM_ACTOR)


@dataclass(frozen=True)
class ChainBreak:
    entry_id: int
    problem: str


def canonical_entry(
    prev_hash: str, at: datetime, actor: str, actor_ip: str | None, action: str,
    message_id: str | None, detail: Mapping[str, Any],
) -> bytes:
    return json.dumps(
        [prev_hash, at.isoformat(), actor, actor_ip, action, message_id, detail],
        sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str,
    ).encode("ascii")


def entry_hash(
    prev_hash: str, at: datetime, actor: str, actor_ip: str | None, action: str,
    message_id: str | None, detail: Mapping[str, Any],
) -> str:
    """The plain SHA-256 of installations without an audit key (and of older entries)."""
    return hashlib.sha256(canonical_entry(prev_hash, at, actor, actor_ip, action, message_id,
                                          detail)).hexdigest()


class AuditLog:
    def __init__(self, engine: Engine, key: AuditKey | None = None,
                 checkpoints: CheckpointFile | None = None) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.key = key
        self.checkpoints = checkpoints

    def record(
        self,
        actor: Actor,
        action: str,
        *,
        message_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
        session: Session | None = None,
    ) -> str:
        """Append one entry (inside ``session`` when given, so it commits with the change);
        returns its hash, which records it justifies (approvals, consents) carry."""
        if session is not None:
            entry = self._append(session, actor, action, message_id, dict(detail or {}))
            if self.checkpoints is not None:  # after the commit: never for a rollback
                event.listen(session, "after_commit", self._after_commit, once=True)
            return entry
        with self._sessions.begin() as own:
            entry = self._append(own, actor, action, message_id, dict(detail or {}))
        self.checkpoint()
        return entry

    def _after_commit(self, _session: Session) -> None:
        self.checkpoint()

    def checkpoint(self) -> None:
        """Publish a signed checkpoint of the current head (see module docstring)."""
        if self.checkpoints is None:
            return
        try:
            with read_only(self._engine).connect() as connection:
                head = connection.execute(select(AuditEvent.id, AuditEvent.hash)
                                          .order_by(AuditEvent.id.desc()).limit(1)).first()
            if head is not None:
                self.checkpoints.publish(head.id, head.hash, utcnow())
        except Exception as error:  # the change is committed; the next one checkpoints
            log_event(log, "audit_checkpoint_failed", level=logging.ERROR,
                      error=type(error).__name__)

    def _append(
        self, session: Session, actor: Actor, action: str, message_id: str | None,
        detail: dict[str, Any],
    ) -> str:
        if session.get_bind().dialect.name == "postgresql":
            # Appends must be serialised or two writers would chain onto the same entry.
            # (SQLite's BEGIN IMMEDIATE serialises them already.)
            session.execute(text("SELECT pg_advisory_xact_lock(7243501)"))
        prev = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
        prev_hash = prev or GENESIS_HASH
        # Round-trip through JSON so the hash covers exactly what the database returns later.
        detail = json.loads(json.dumps(detail, default=str))
        at = utcnow()
        canonical = canonical_entry(prev_hash, at, actor.name, actor.ip, action, message_id,
                                    detail)
        digest = (self.key.mac(canonical) if self.key is not None
                  else hashlib.sha256(canonical).hexdigest())
        session.add(
            AuditEvent(
                at=at, actor=actor.name, actor_ip=actor.ip, action=action,
                message_id=message_id, detail=detail, prev_hash=prev_hash, hash=digest,
            )
        )
        return digest

    def entries(
        self,
        *,
        since: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        message_id: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if since is not None:
            query = query.where(AuditEvent.at >= since)
        if actor is not None:
            query = query.where(AuditEvent.actor == actor)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        if message_id is not None:
            query = query.where(AuditEvent.message_id == message_id)
        with self._sessions.begin() as session:
            return [
                {
                    "id": e.id, "at": e.at.isoformat(), "actor": e.actor, "actor_ip": e.actor_ip,
                    "action": e.action, "message_id": e.message_id, "detail": e.detail,
                    "hash": e.hash,
                }
                for e in session.scalars(query)
            ]
