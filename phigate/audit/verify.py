"""Verifying the audit chain: links, hashes (plain or HMAC), the newest signed checkpoint.

When ``phigate purge`` removes audit entries past the retention period it records, in the
same transaction, a ``retention.purge`` entry holding the hash of the newest entry it removed
(``audit_anchor``). The oldest surviving entry must link to that anchor; any other broken
first link means entries were removed by something other than retention.

With an audit key, plain SHA-256 entries are accepted only before the first HMAC entry
(an installation that had a log before the key was configured); after it every entry
must carry a valid HMAC. The newest checkpoint must be signed by the key, and the chain
must still hold the entry it names, with the hash it names: deleting the newest entries,
or rebuilding the chain, fails here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from phigate.audit.checkpoint import Checkpoint
from phigate.audit.keys import AuditKey
from phigate.audit.log import GENESIS_HASH, ChainBreak, canonical_entry, entry_hash
from phigate.queue.models import AuditEvent

PURGE_ACTION = "retention.purge"
ANCHOR_KEY = "audit_anchor"
#: Entries whose details records are re-checked against (see phigate.audit.records).
SEALING_ACTIONS = ("campaign.approve", "consent.grant", "consent.revoke", "consent.import")


@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken: ChainBreak | None
    #: True when the chain starts at a retention anchor instead of the genesis hash.
    anchored: bool = False
    #: Entries verified by HMAC under the audit key (the rest: plain SHA-256, older).
    keyed: int = 0
    #: The checkpoint the chain was checked against (None: no key, or none yet).
    checkpoint: Checkpoint | None = None
    #: Approvals and consents re-checked against their audit entries.
    records_checked: int = 0
    #: Consent rows from before entries sealed them (counted, not failed).
    unsealed: int = 0

    @property
    def ok(self) -> bool:
        return self.broken is None


@dataclass
class _Walk:
    checked: int = 0
    keyed: int = 0
    anchored: bool = False
    last_id: int = 0
    at_checkpoint: str | None = None
    sealing: dict[str, tuple[str, Any]] = field(default_factory=dict)


def _retention_anchors(session: Session) -> set[str]:
    details = session.scalars(select(AuditEvent.detail).where(AuditEvent.action == PURGE_ACTION))
    return {d[ANCHOR_KEY] for d in details if isinstance(d, dict) and d.get(ANCHOR_KEY)}


def verify_chain(session: Session, *, key: AuditKey | None = None,
                 checkpoint: Checkpoint | None = None) -> ChainReport:
    walk = _Walk()
    broken = _walk_chain(session, key, checkpoint, walk)
    if broken is None and key is not None:
        broken = _check_checkpoint(key, checkpoint, walk)
    if broken is None:
        from phigate.audit.records import verify_records

        records = verify_records(session, walk.sealing)
        return ChainReport(walk.checked, records.broken, walk.anchored, walk.keyed,
                           checkpoint, records.checked, records.unsealed)
    return ChainReport(walk.checked, broken, walk.anchored, walk.keyed, checkpoint)


def _walk_chain(session: Session, key: AuditKey | None, checkpoint: Checkpoint | None,
                walk: _Walk) -> ChainBreak | None:
    expected_prev: str | None = None
    for entry in session.scalars(select(AuditEvent).order_by(AuditEvent.id)).yield_per(1000):
        if expected_prev is None:  # the oldest surviving entry
            if entry.prev_hash != GENESIS_HASH:
                if entry.prev_hash not in _retention_anchors(session):
                    return ChainBreak(entry.id, "first entry links to no retention anchor "
                                                "(entries were removed)")
                walk.anchored = True
        elif entry.prev_hash != expected_prev:
            return ChainBreak(entry.id, "previous-hash link broken (an entry was removed "
                                        "or inserted)")
        problem = _hash_problem(entry, key, walk)
        if problem is not None:
            return ChainBreak(entry.id, problem)
        if entry.action in SEALING_ACTIONS:
            walk.sealing[entry.hash] = (entry.action, entry.detail)
        if checkpoint is not None and entry.id == checkpoint.index:
            walk.at_checkpoint = entry.hash
        expected_prev = entry.hash
        walk.checked += 1
        walk.last_id = entry.id
    return None


def _hash_problem(entry: AuditEvent, key: AuditKey | None, walk: _Walk) -> str | None:
    canonical = canonical_entry(entry.prev_hash, entry.at, entry.actor, entry.actor_ip,
                                entry.action, entry.message_id, entry.detail)
    if key is not None and key.mac(canonical) == entry.hash:
        walk.keyed += 1
        return None
    if walk.keyed:
        return "entry is not signed by the audit key (rewritten after the key was set)"
    if entry_hash(entry.prev_hash, entry.at, entry.actor, entry.actor_ip, entry.action,
                  entry.message_id, entry.detail) == entry.hash:
        return None
    if key is None:
        return "entry content does not match its hash (or it is keyed: set [audit] key_file)"
    return "entry content does not match its hash"


def _check_checkpoint(key: AuditKey, checkpoint: Checkpoint | None,
                      walk: _Walk) -> ChainBreak | None:
    if checkpoint is None:
        if walk.keyed:
            return ChainBreak(walk.last_id, "no audit checkpoint found (the checkpoint file "
                                            "was removed?)")
        return None
    if not checkpoint.valid_for(key.public_hex):
        return ChainBreak(checkpoint.index, "checkpoint signature is not valid for this key")
    if walk.last_id < checkpoint.index:
        return ChainBreak(checkpoint.index, f"the newest entries were removed: the checkpoint "
                                            f"names entry {checkpoint.index}, the log ends at "
                                            f"{walk.last_id}")
    if walk.at_checkpoint != checkpoint.hash:
        return ChainBreak(checkpoint.index, "entry named by the checkpoint has another hash "
                                            "(the chain was rebuilt)")
    return None
