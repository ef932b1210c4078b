"""The queue store on SQLite and PostgreSQL: enqueue, leases, outcomes, parking, shredding."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from helpers.queue import delivered
from sqlalchemy import select, text

from phigate.clock import utcnow
from phigate.queue.crypto import DecryptionError, MasterKey
from phigate.queue.models import Message, MessageState, RecipientState
from phigate.queue.store import NewMessage, SqlQueueStore
from phigate.queue.transitions import MAX_PROCESSING_ERRORS, AttemptRecord, Disposition
from phigate.runtime import Runtime


def enqueue(store: SqlQueueStore, recipients: int = 2, body: bytes = b"Subject: x\r\n\r\nhi\r\n",
            **fields: object) -> str:
    return store.enqueue(NewMessage(
        sender="app@practice.test",
        recipients=[f"p{i}@example{i % 2}.org" for i in range(recipients)],
        body=body, **fields,  # type: ignore[arg-type]
    ))


def test_enqueue_round_trip_and_body_sealed(runtime: Runtime) -> None:
    store = runtime.store
    message_id = enqueue(store, body=b"Subject: s\r\n\r\nSEALED-BODY-123\r\n")
    assert store.read_body(message_id).endswith(b"SEALED-BODY-123\r\n")
    with store.writing() as session:
        stored = session.execute(text("SELECT ciphertext FROM message_bodies")).scalar_one()
    assert b"SEALED-BODY-123" not in bytes(stored)
    view = store.get_message(message_id)
    assert view.state == MessageState.ACTIVE
    assert sorted(r.address for r in view.recipients) == ["p0@example0.org", "p1@example1.org"]


def test_body_needs_the_right_master_key(runtime: Runtime) -> None:
    message_id = enqueue(runtime.store)
    other = SqlQueueStore(runtime.engine, MasterKey.generate())
    with pytest.raises(DecryptionError):
        other.read_body(message_id)


def test_destroying_the_key_makes_the_body_unreadable_and_keeps_metadata(
    runtime: Runtime,
) -> None:
    store = runtime.store
    message_id = enqueue(store)
    store.destroy_body(message_id)
    with pytest.raises(DecryptionError):
        store.read_body(message_id)
    view = store.get_message(message_id)
    assert view.purged and len(view.recipients) == 2


def test_claim_is_a_lease_owned_by_one_worker(runtime: Runtime) -> None:
    store = runtime.store
    enqueue(store, recipients=3)
    now = utcnow()
    first = store.claim_due("node-a", now=now, limit=10, lease_seconds=60)
    assert len(first) == 3
    assert store.claim_due("node-b", now=now, limit=10, lease_seconds=60) == []
    # Only the owner may record outcomes.
    assert not delivered(store, first[0].recipient_id, "node-b", now=now)
    assert delivered(store, first[0].recipient_id, "node-a", now=now)
    # The lease of a dead node runs out and another node takes the work over.
    later = now + timedelta(seconds=61)
    taken_over = store.claim_due("node-b", now=later, limit=10, lease_seconds=60)
    assert {c.recipient_id for c in taken_over} == {c.recipient_id for c in first[1:]}
    # The old owner can no longer change them.
    assert not store.defer(first[1].recipient_id, "node-a", next_attempt_at=later, code=451,
                           text="late")


def test_defer_then_due_again_and_attempts_recorded(runtime: Runtime) -> None:
    store = runtime.store
    message_id = enqueue(store, recipients=1)
    now = utcnow()
    (claimed,) = store.claim_due("n", now=now, limit=5, lease_seconds=60)
    retry_at = now + timedelta(minutes=2)
    attempt = AttemptRecord(
        started_at=now, host="mx.example0.org", code=451, text="4.3.0 later",
        tls_version="TLSv1.3", tls_cipher="TLS_AES_256_GCM_SHA384", cert_verified=True)
    assert store.record_outcomes(
        "n", [Disposition(claimed.recipient_id, attempt, next_attempt_at=retry_at)],
        now=now) == [True]
    assert store.claim_due("n", now=now + timedelta(minutes=1), limit=5, lease_seconds=60) == []
    (again,) = store.claim_due("n", now=retry_at, limit=5, lease_seconds=60)
    assert again.attempts == 1
    view = store.get_message(message_id)
    assert view.recipients[0].state == RecipientState.DEFERRED


def test_message_done_when_every_recipient_is_final(runtime: Runtime) -> None:
    store = runtime.store
    message_id = enqueue(store, recipients=2)
    now = utcnow()
    first, second = store.claim_due("n", now=now, limit=5, lease_seconds=60)
    delivered(store, first.recipient_id, "n", now=now)
    assert store.get_message(message_id).state == MessageState.ACTIVE
    store.mark_failed(second.recipient_id, "n", state=RecipientState.BOUNCED, code=550,
                      text="5.1.1 unknown", now=now)
    assert store.get_message(message_id).state == MessageState.DONE


def test_held_and_quarantined_messages_are_not_claimed(runtime: Runtime) -> None:
    store = runtime.store
    held = enqueue(store, recipients=1)
    store.set_state(held, MessageState.HELD, reason="admin")
    enqueue(store, recipients=1, state=MessageState.QUARANTINED, hold_reason="PHI")
    assert store.claim_due("n", now=utcnow(), limit=10, lease_seconds=60) == []
    store.set_state(held, MessageState.ACTIVE)
    assert len(store.claim_due("n", now=utcnow(), limit=10, lease_seconds=60)) == 1


def test_repeated_processing_errors_park_the_message_as_corrupt(runtime: Runtime) -> None:
    store = runtime.store
    message_id = enqueue(store, recipients=1)
    for attempt in range(1, MAX_PROCESSING_ERRORS + 1):
        claimed = store.claim_due("n", now=utcnow(), limit=5, lease_seconds=60)
        assert len(claimed) == 1, attempt
        parked = store.note_processing_error(message_id)
        assert parked == (attempt == MAX_PROCESSING_ERRORS)
    assert store.get_message(message_id).state == MessageState.CORRUPT
    assert store.claim_due("n", now=utcnow(), limit=5, lease_seconds=60) == []
    assert store.read_body(message_id)  # parked, never dropped


def test_release_leases_on_shutdown(runtime: Runtime) -> None:
    store = runtime.store
    enqueue(store, recipients=2)
    now = utcnow()
    store.claim_due("leaving", now=now, limit=5, lease_seconds=600)
    assert store.release_leases("leaving") == 2
    assert len(store.claim_due("staying", now=now, limit=5, lease_seconds=60)) == 2


def test_concurrent_claimers_never_share_a_recipient(runtime: Runtime) -> None:
    store = runtime.store
    for _ in range(40):
        enqueue(store, recipients=5)
    claimed: dict[str, list[int]] = {}
    now = utcnow()

    def worker(name: str) -> None:
        got: list[int] = []
        while batch := store.claim_due(name, now=now, limit=7, lease_seconds=300):
            got.extend(c.recipient_id for c in batch)
        claimed[name] = got

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [rid for ids in claimed.values() for rid in ids]
    assert len(every) == 200
    assert len(set(every)) == 200


def test_schema_is_current_after_upgrade(runtime: Runtime) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import phigate.queue.policy_models  # noqa: F401  (its tables belong to the metadata)
    from phigate.queue.models import Base

    with runtime.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    with runtime.store.writing() as session:
        assert session.scalars(select(Message)).all() == []


def _finish_together(store: SqlQueueStore, recipient_id: int, now: datetime,
                     barrier: threading.Barrier) -> None:
    barrier.wait()
    assert delivered(store, recipient_id, "n", now=now)


def test_recipients_finishing_at_once_close_the_message(runtime: Runtime) -> None:
    """Two workers finishing the last two recipients concurrently (through record_outcomes,
    the path delivery runs): the message is done, on SQLite and PostgreSQL alike."""
    store = runtime.store
    for _ in range(10):
        message_id = enqueue(store, recipients=2)
        now = utcnow()
        first, second = store.claim_due("n", now=now, limit=5, lease_seconds=60)
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=_finish_together, args=(store, c.recipient_id, now,
                                                                   barrier))
                   for c in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.get_message(message_id).state == MessageState.DONE
