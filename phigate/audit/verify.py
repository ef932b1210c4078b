"""Verifying the audit hash chain, including a chain whose oldest entries retention removed.

When ``phigate purge`` removes audit entries past the retention period it records, in the
same transaction, a ``retention.purge`` entry holding the hash of the newest entry it removed
(``audit_anchor``). The oldest surviving entry must link to that anchor; any other broken
first link means entries were removed by something other than retention.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from phigate.audit.log import GENESIS_HASH, ChainBreak, entry_hash
from phigate.queue.models import AuditEvent

PURGE_ACTION = "retention.purge"
ANCHOR_KEY = "audit_anchor"


@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken: ChainBreak | None
    #: True when the chain starts at a retention anchor instead of the genesis hash.
    anchored: bool = False

    @property
    def ok(self) -> bool:
        return self.broken is None


def _retention_anchors(session: Session) -> set[str]:
    details = session.scalars(select(AuditEvent.detail).where(AuditEvent.action == PURGE_ACTION))
    return {d[ANCHOR_KEY] for d in details if isinstance(d, dict) and d.get(ANCHOR_KEY)}


def verify_chain(session: Session) -> ChainReport:
    expected_prev: str | None = None
    anchored = False
    checked = 0
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)).yield_per(1000):
        if expected_prev is None:  # the oldest surviving entry
            if event.prev_hash != GENESIS_HASH:
                if event.prev_hash not in _retention_anchors(session):
                    return ChainReport(checked, ChainBreak(
                        event.id, "first entry links to no retention anchor "
                                  "(entries were removed)"))
                anchored = True
        elif event.prev_hash != expected_prev:
            return ChainReport(checked, ChainBreak(
                event.id, "previous-hash link broken (an entry was removed or inserted)"))
        actual = entry_hash(event.prev_hash, event.at, event.actor, event.actor_ip,
                            event.action, event.message_id, event.detail)
        if actual != event.hash:
            return ChainReport(checked, ChainBreak(event.id,
                                                   "entry content does not match its hash"))
        expected_prev = event.hash
        checked += 1
    return ChainReport(checked, None, anchored)
