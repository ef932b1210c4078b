"""The store's fast paths: reads that never wait for the write lock, and one commit per
delivery for the attempts and their outcomes. Same guarantees as the slow paths."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text

from phigate.clock import utcnow
from phigate.queue.db import make_engine, one_statement_reads, read_only, writer_turn
from phigate.queue.models import Attempt, MessageState, RecipientState
from phigate.queue.store import NewMessage, SqlQueueStore
from phigate.queue.transitions import AttemptRecord, Disposition
from phigate.runtime import Runtime


def _enqueue(store: SqlQueueStore, recipients: int) -> str:
    return store.enqueue(NewMessage(
        sender="app@practice.test", recipients=[f"p{i}@example.org" for i in range(recipients)],
        body=b"Subject: x\r\n\r\nhi\r\n"))


def _attempt(code: int) -> AttemptRecord:
    return AttemptRecord(started_at=utcnow(), host="mx.example.org", code=code, text="x")


def test_reads_do_not_wait_for_a_writer_holding_the_lock(runtime: Runtime) -> None:
    if runtime.engine.dialect.name != "sqlite":
        return  # PostgreSQL readers never wait for writers anyway
    store = runtime.store
    message_id = _enqueue(store, 1)
    # A second engine on the same file, so the writer holds a connection of its own.
    writer_engine = make_engine(runtime.settings.storage.url)
    writer = writer_engine.connect()
    writer.begin()  # BEGIN IMMEDIATE: holds the write lock until rollback
    writer.execute(text("UPDATE messages SET size = size + 1"))
    results: dict[str, Any] = {}

    def read() -> None:
        started = time.monotonic()
        results["body"] = store.read_body(message_id)
        results["view"] = store.get_message(message_id)
        results["seconds"] = time.monotonic() - started

    try:
        reader = threading.Thread(target=read)
        reader.start()
        reader.join(timeout=5)  # a reader taking the write lock would wait 30 s here
        assert not reader.is_alive()
        assert results["body"].endswith(b"hi\r\n")
        assert results["view"].state == MessageState.ACTIVE
        assert results["seconds"] < 2
    finally:
        writer.rollback()
        writer.close()
        writer_engine.dispose()


def test_read_only_engine_shares_the_pool_and_marks_its_transactions(runtime: Runtime) -> None:
    reader = read_only(runtime.engine)
    assert reader.pool is runtime.engine.pool
    with reader.connect() as connection:
        assert connection.get_execution_options()["phigate_read_only"] is True
        assert connection.execute(select(func.count()).select_from(Attempt)).scalar() == 0


def test_one_statement_reads_send_no_begin_and_see_committed_rows(runtime: Runtime) -> None:
    _enqueue(runtime.store, 2)
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement.split()[0].upper())

    event.listen(runtime.engine, "before_cursor_execute", record)
    try:
        with one_statement_reads(runtime.engine).connect() as connection:
            count = connection.execute(select(func.count()).select_from(Attempt)).scalar()
        one = list(sent)
        sent.clear()
        with read_only(runtime.engine).connect() as connection:
            connection.execute(select(func.count()).select_from(Attempt)).scalar()
    finally:
        event.remove(runtime.engine, "before_cursor_execute", record)
    assert count == 0
    if runtime.engine.dialect.name == "sqlite":
        assert one == ["SELECT"]  # its own snapshot: no BEGIN around it
        assert sent == ["BEGIN", "SELECT"]


def test_a_one_statement_read_does_not_wait_for_a_writer(runtime: Runtime) -> None:
    if runtime.engine.dialect.name != "sqlite":
        return
    _enqueue(runtime.store, 1)
    writer_engine = make_engine(runtime.settings.storage.url)
    writer = writer_engine.connect()
    writer.begin()  # BEGIN IMMEDIATE: holds the write lock until rollback
    writer.execute(text("UPDATE recipients SET attempts = attempts + 1"))
    found: list[int] = []

    def read() -> None:
        with one_statement_reads(runtime.engine).connect() as connection:
            found.append(int(connection.execute(
                text("SELECT sum(attempts) FROM recipients")).scalar() or 0))

    try:
        reader = threading.Thread(target=read)
        reader.start()
        reader.join(timeout=5)  # waiting for the write lock would take the busy timeout
        assert not reader.is_alive()
        assert found == [0]  # the committed snapshot, not the writer's uncommitted update
    finally:
        writer.rollback()
        writer.close()
        writer_engine.dispose()


def test_record_outcomes_is_one_commit_for_attempts_deliveries_and_deferrals(
    runtime: Runtime,
) -> None:
    store = runtime.store
    message_id = _enqueue(store, 3)
    now = utcnow()
    delivered, deferred, failing = store.claim_due("n", now=now, limit=5, lease_seconds=60)
    retry_at = now + timedelta(minutes=5)
    commits: list[int] = []
    listener = lambda _conn: commits.append(1)  # noqa: E731
    event.listen(runtime.engine, "commit", listener)
    try:
        recorded = store.record_outcomes("n", [
            Disposition(delivered.recipient_id, _attempt(250), delivered=True),
            Disposition(deferred.recipient_id, _attempt(451), next_attempt_at=retry_at),
            Disposition(failing.recipient_id, _attempt(550)),
        ], now=now)
    finally:
        event.remove(runtime.engine, "commit", listener)
    assert recorded == [True, True, True]
    assert len(commits) == 1
    view = {r.id: r for r in store.get_message(message_id).recipients}
    assert view[delivered.recipient_id].state == RecipientState.DELIVERED
    assert view[deferred.recipient_id].state == RecipientState.DEFERRED
    assert view[deferred.recipient_id].next_attempt_at.replace(tzinfo=None) == \
        retry_at.replace(tzinfo=None)
    assert view[failing.recipient_id].last_code == 550
    assert all(r.attempts == 1 for r in view.values())
    # The failing recipient keeps its lease: the scheduler finishes it after the DSN.
    assert store.mark_failed(failing.recipient_id, "n", state=RecipientState.BOUNCED,
                             code=550, text="x", now=now)
    with store.reading() as session:
        assert session.scalar(select(func.count()).select_from(Attempt)) == 3


def test_record_outcomes_closes_the_message_and_respects_lost_leases(
    runtime: Runtime,
) -> None:
    store = runtime.store
    message_id = _enqueue(store, 2)
    now = utcnow()
    first, second = store.claim_due("node-a", now=now, limit=5, lease_seconds=60)
    later = now + timedelta(seconds=61)
    (taken,) = [c for c in store.claim_due("node-b", now=later, limit=5, lease_seconds=60)
                if c.recipient_id == second.recipient_id]
    # node-a still holds nothing (both leases ran out and node-b took them).
    assert store.record_outcomes("node-a", [
        Disposition(second.recipient_id, _attempt(250), delivered=True)], now=later) == [False]
    assert store.record_outcomes("node-b", [
        Disposition(first.recipient_id, _attempt(250), delivered=True),
        Disposition(taken.recipient_id, _attempt(250), delivered=True)], now=later) == [True, True]
    assert store.get_message(message_id).state == MessageState.DONE


def test_one_batch_of_outcomes_closes_several_messages(runtime: Runtime) -> None:
    # Concurrent jobs' outcomes share one transaction, so one close_if_done gets several
    # messages: its statement must work as an executemany (an IN list there did not).
    store = runtime.store
    ids = [_enqueue(store, 1), _enqueue(store, 1), _enqueue(store, 2)]
    now = utcnow()
    claimed = store.claim_due("n", now=now, limit=10, lease_seconds=60)
    open_one = next(c for c in claimed if c.message_id == ids[2])
    assert store.record_outcomes("n", [
        Disposition(c.recipient_id, _attempt(250), delivered=True)
        for c in claimed if c is not open_one], now=now) == [True, True, True]
    assert [store.get_message(i).state for i in ids] == [
        MessageState.DONE, MessageState.DONE, MessageState.ACTIVE]  # one recipient pending


def test_sqlite_writers_of_one_process_take_turns_on_one_lock(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    other = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    postgres = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # never connects
    try:
        assert writer_turn(engine) is writer_turn(engine)
        assert writer_turn(engine) is not writer_turn(other)
        assert not isinstance(writer_turn(postgres), type(writer_turn(engine)))
    finally:
        for each in (engine, other, postgres):
            each.dispose()


def test_concurrent_enqueues_all_commit(runtime: Runtime) -> None:
    store = runtime.store
    ids: list[str] = []
    lock = threading.Lock()

    def submit() -> None:
        for _ in range(10):
            message_id = _enqueue(store, 1)
            with lock:
                ids.append(message_id)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(set(ids)) == 60
    assert store.count_messages() == {"active": 60}


def test_a_body_is_read_with_one_statement(runtime: Runtime) -> None:
    from phigate.queue.crypto import DecryptionError
    from phigate.queue.store import UnknownMessage

    store = runtime.store
    message_id = _enqueue(store, 1)
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement.split()[0].upper())

    event.listen(runtime.engine, "before_cursor_execute", record)
    try:
        body = store.read_body(message_id)
    finally:
        event.remove(runtime.engine, "before_cursor_execute", record)
    assert body == b"Subject: x\r\n\r\nhi\r\n"
    if runtime.engine.dialect.name == "sqlite":
        assert sent == ["SELECT"]  # no BEGIN: one SELECT is its own snapshot
    with pytest.raises(UnknownMessage):
        store.read_body("no-such-message")
    with runtime.engine.begin() as connection:  # the body's row gone (purged)
        connection.execute(text("DELETE FROM message_bodies"))
    with pytest.raises(DecryptionError):
        store.read_body(message_id)
    other = _enqueue(store, 1)
    with runtime.engine.begin() as connection:  # the key shredded
        connection.execute(text("UPDATE messages SET wrapped_key = NULL"))
    with pytest.raises(DecryptionError):
        store.read_body(other)
