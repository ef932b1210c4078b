"""Retention (``phigate purge``): what is kept, for how long, and what is never purged.

* Bodies of finished messages are crypto-shredded ``[retention] body_days`` after their final
  state: the wrapped data key and the ciphertext are deleted, so no backup of the master key
  can bring them back from a current database.
* Metadata (envelope, verdicts, attempts) and audit entries are removed after
  ``[retention] metadata_days`` (HIPAA documentation retention: six years).
* Expired opaque tokens (``issued_tokens``: unsubscribe and VERP) are forgotten, and expired
  secure pickups have their data key destroyed (the delivery role does that too while it
  runs; the purge timer makes sure of it when delivery is stopped or runs elsewhere).
* Only finished (``done``) messages are purged. Held, quarantined, corrupt and
  awaiting-approval messages are never purged: the report counts the ones past the body
  retention so an admin can review them.

Work is done in small batches (one transaction each) so a purge never blocks the relay.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from phigate.audit.log import Actor, AuditLog
from phigate.audit.verify import ANCHOR_KEY, PURGE_ACTION
from phigate.config import RetentionSettings
from phigate.pickup.store import PickupEvent
from phigate.queue import transitions
from phigate.queue.db import shred_checkpoint
from phigate.queue.models import AuditEvent, Message, MessageState
from phigate.queue.pickup_models import Pickup
from phigate.queue.policy_models import IssuedToken

BATCH = 500
NEVER_PURGED = (MessageState.HELD, MessageState.QUARANTINED, MessageState.CORRUPT,
                MessageState.AWAITING_APPROVAL)


@dataclass(frozen=True)
class PurgeReport:
    dry_run: bool
    bodies_destroyed: int
    messages_removed: int
    audit_entries_removed: int
    #: Held/quarantined/... messages older than the body retention, kept for review.
    kept_for_review: int
    #: Expired unsubscribe/VERP tokens forgotten (their recipient mapping deleted).
    tokens_removed: int = 0
    #: Expired secure pickups whose data key was destroyed.
    pickups_expired: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bodies_due(cutoff: datetime) -> Any:
    return (Message.state == MessageState.DONE) & (Message.final_at <= cutoff) & (
        Message.wrapped_key.is_not(None))


def _metadata_due(cutoff: datetime) -> Any:
    return (Message.state == MessageState.DONE) & (Message.final_at <= cutoff)


def _in_batches(sessions: sessionmaker[Session], condition: Any, apply: Any) -> int:
    done = 0
    while True:
        with sessions.begin() as session:
            ids = session.scalars(select(Message.id).where(condition).limit(BATCH)).all()
            if not ids:
                return done
            apply(session, list(ids))
            done += len(ids)


def purge(engine: Engine, audit: AuditLog, settings: RetentionSettings, actor: Actor, *,
          now: datetime, dry_run: bool = False) -> PurgeReport:
    body_cutoff = now - timedelta(days=settings.body_days)
    metadata_cutoff = now - timedelta(days=settings.metadata_days)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions.begin() as session:
        kept = _count(session, Message.state.in_(NEVER_PURGED)
                      & (Message.created_at <= body_cutoff))
        if dry_run:
            return PurgeReport(
                dry_run=True,
                bodies_destroyed=_count(session, _bodies_due(body_cutoff)),
                messages_removed=_count(session, _metadata_due(metadata_cutoff)),
                audit_entries_removed=int(session.scalar(
                    select(func.count()).where(AuditEvent.at <= metadata_cutoff)) or 0),
                kept_for_review=kept,
                tokens_removed=_count_of(session, IssuedToken, IssuedToken.expires_at < now),
                pickups_expired=_count_of(session, Pickup, _pickup_due(now)),
            )
    removed = _in_batches(sessions, _metadata_due(metadata_cutoff),
                          transitions.remove_messages)
    shredded = _in_batches(sessions, _bodies_due(body_cutoff),
                           lambda session, ids: transitions.shred_bodies(session, ids, now))
    tokens, pickups = _expire_tokens(sessions, audit, actor, now)
    with sessions.begin() as session:
        # The audit entries go in the transaction that records the purge, so the anchor the
        # chain now starts from is itself chained (see audit_chain).
        last_removed = session.execute(
            select(AuditEvent.id, AuditEvent.hash).where(AuditEvent.at <= metadata_cutoff)
            .order_by(AuditEvent.id.desc()).limit(1)
        ).one_or_none()
        audit_removed = 0
        detail: dict[str, Any] = {"bodies_destroyed": shredded, "messages_removed": removed,
                                  "kept_for_review": kept}
        if last_removed is not None:
            result = session.execute(delete(AuditEvent).where(AuditEvent.id <= last_removed.id))
            audit_removed = int(result.rowcount)  # type: ignore[attr-defined]
            detail["audit_entries_removed"] = audit_removed
            detail[ANCHOR_KEY] = last_removed.hash
        detail.update({key: value for key, value in (("tokens_removed", tokens),
                                                     ("pickups_expired", pickups)) if value})
        audit.record(actor, PURGE_ACTION, detail=detail, session=session)
    if shredded or removed or tokens or pickups:
        shred_checkpoint(engine)
    return PurgeReport(False, shredded, removed, audit_removed, kept, tokens, pickups)


def _pickup_due(now: datetime) -> Any:
    return (Pickup.expires_at <= now) & Pickup.wrapped_key.is_not(None)


def _expire_tokens(sessions: sessionmaker[Session], audit: AuditLog, actor: Actor,
                   now: datetime) -> tuple[int, int]:
    """Forget expired unsubscribe/VERP tokens; destroy the keys of expired pickups (each
    audited as the delivery role audits it). No master key needed: nothing is unwrapped."""
    with sessions.begin() as session:
        result = session.execute(delete(IssuedToken).where(IssuedToken.expires_at < now))
        tokens = int(getattr(result, "rowcount", 0) or 0)
        due = session.execute(select(Pickup.id, Pickup.message_id).where(_pickup_due(now))
                              .with_for_update()).all()
        for pickup_id, message_id in due:
            transitions.expire_pickup(session, pickup_id, now)
            audit.record(actor, PickupEvent.EXPIRED.value, message_id=message_id,
                         detail={"pickup": pickup_id}, session=session)
    return tokens, len(due)


def _count_of(session: Session, table: Any, condition: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(table).where(condition)) or 0)


def _count(session: Session, condition: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(Message).where(condition)) or 0)
