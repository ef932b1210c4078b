"""Group commit of accepted messages and of delivery outcomes (issue 16 item 4): several
per transaction, each caller returning only once the transaction holding its item
committed."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from phigate.clock import utcnow
from phigate.queue.models import Message, MessageState, RecipientState
from phigate.queue.store import NewMessage, SqlQueueStore
from phigate.queue.transitions import AttemptRecord, Disposition
from phigate.runtime import Runtime

WAIT = 30.0  # seconds; a safety net against a hang, not a timing assertion


def _message(token: str, sender: str = "app@practice.test") -> NewMessage:
    return NewMessage(sender=sender, recipients=["p@example.org"],
                      body=f"Subject: x\r\n\r\nbody {token}\r\n".encode())


class _Enqueuer(threading.Thread):
    def __init__(self, store: SqlQueueStore, message: NewMessage) -> None:
        super().__init__(daemon=True)
        self.store, self.message = store, message
        self.message_id: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.message_id = self.store.enqueue(self.message)
        except BaseException as error:  # the test looks at it
            self.error = error


def _message_rows(statement: str, parameters: Any, executemany: bool) -> list[Any]:
    """The parameter rows of a statement that inserts into ``messages`` (else none)."""
    if not statement.lstrip().upper().startswith("INSERT INTO MESSAGES "):
        return []
    return list(parameters) if executemany else [parameters]


def _commits(store: SqlQueueStore, hooks: Any) -> list[int]:
    """Messages inserted by each committed transaction of ``store``'s engine (counted at
    the statement, so it holds whether the store writes through the ORM or plain SQL)."""
    sizes: list[int] = []
    pending: dict[int, int] = {}

    @hooks(store.engine, "before_cursor_execute")
    def inserted(connection: Any, _cursor: Any, statement: str, parameters: Any,
                 _context: Any, executemany: bool) -> None:
        rows = _message_rows(statement, parameters, executemany)
        if rows:
            pending[id(connection)] = pending.get(id(connection), 0) + len(rows)

    @hooks(store.engine, "commit")
    def committed(connection: Any) -> None:
        if id(connection) in pending:
            sizes.append(pending.pop(id(connection)))

    return sizes


@pytest.fixture
def hooks() -> Any:
    """``hooks(target, name)`` decorates an event listener, removed after the test."""
    added: list[tuple[Any, str, Any]] = []

    def listen(target: Any, name: str) -> Any:
        def register(fn: Any) -> Any:
            event.listen(target, name, fn)
            added.append((target, name, fn))
            return fn
        return register

    yield listen
    for target, name, fn in added:
        event.remove(target, name, fn)


def test_messages_waiting_for_a_commit_share_the_next_one(runtime: Runtime, hooks: Any) -> None:
    store = runtime.store
    sizes = _commits(store, hooks)
    gate = threading.Event()
    first_commit = threading.Event()

    @hooks(Session, "before_commit")
    def hold_the_first(session: Session) -> None:
        if session.bind is store.engine and not first_commit.is_set():
            first_commit.set()
            assert gate.wait(WAIT)

    first = _Enqueuer(store, _message("first"))
    first.start()
    assert first_commit.wait(WAIT)
    others = [_Enqueuer(store, _message(f"m{i}")) for i in range(7)]
    for thread in others:
        thread.start()
    while store._accepted.waiting < 7:  # all seven queued behind the held commit
        threading.Event().wait(0.01)

    # Nobody is acknowledged before its commit: the first is inside it, the rest wait.
    assert all(t.is_alive() and t.message_id is None for t in [first, *others])
    gate.set()
    for thread in [first, *others]:
        thread.join(WAIT)
        assert thread.error is None and thread.message_id is not None

    assert sizes == [1, 7]  # two transactions (two fsyncs) for eight messages
    for index, thread in enumerate(others):
        assert thread.message_id is not None
        assert f"body m{index}".encode() in store.read_body(thread.message_id)


def test_a_failing_message_does_not_refuse_the_others_of_its_batch(
        runtime: Runtime, hooks: Any) -> None:
    store = runtime.store
    gate = threading.Event()
    first_commit = threading.Event()

    @hooks(Session, "before_commit")
    def hold_the_first(session: Session) -> None:
        if session.bind is store.engine and not first_commit.is_set():
            first_commit.set()
            assert gate.wait(WAIT)

    @hooks(store.engine, "before_cursor_execute")
    def refuse_one(_connection: Any, _cursor: Any, statement: str, parameters: Any,
                   _context: Any, executemany: bool) -> None:
        for row in _message_rows(statement, parameters, executemany):
            if "bad@practice.test" in (row.values() if isinstance(row, dict) else row):
                raise RuntimeError("simulated write failure")

    first = _Enqueuer(store, _message("first"))
    first.start()
    assert first_commit.wait(WAIT)
    good = [_Enqueuer(store, _message(f"g{i}")) for i in range(3)]
    bad = _Enqueuer(store, _message("bad", sender="bad@practice.test"))
    for thread in [*good, bad]:
        thread.start()
    while store._accepted.waiting < 4:
        threading.Event().wait(0.01)
    gate.set()
    for thread in [first, *good, bad]:
        thread.join(WAIT)

    assert isinstance(bad.error, RuntimeError) and bad.message_id is None
    for index, thread in enumerate(good):
        assert thread.error is None and thread.message_id is not None
        assert f"body g{index}".encode() in store.read_body(thread.message_id)
    with store.reading() as session:
        senders = [m.sender for m in session.query(Message)]
    assert "bad@practice.test" not in senders and len(senders) == 4


class _Recorder(threading.Thread):
    def __init__(self, store: SqlQueueStore, owner: str, recipient_id: int) -> None:
        super().__init__(daemon=True)
        self.store, self.owner, self.recipient_id = store, owner, recipient_id
        self.result: list[bool] | None = None

    def run(self) -> None:
        attempt = AttemptRecord(started_at=utcnow(), host="mx.example.org", code=250,
                                text="2.0.0 ok")
        self.result = self.store.record_outcomes(
            self.owner, [Disposition(self.recipient_id, attempt, delivered=True)],
            now=utcnow())


def test_delivery_outcomes_recorded_while_a_commit_runs_share_the_next_one(
        runtime: Runtime, hooks: Any) -> None:
    """Each job's outcome returns after its commit, with its own lease answer: a worker
    that lost its lease gets False in a batch with others that did not."""
    store = runtime.store
    ids = [store.enqueue(_message(f"d{i}")) for i in range(5)]
    claimed = store.claim_due("node-a", now=utcnow(), limit=10, lease_seconds=300)
    recipient_of = {c.message_id: c.recipient_id for c in claimed}
    gate, first_commit = threading.Event(), threading.Event()
    commits: list[int] = []

    @hooks(Session, "before_commit")
    def hold_the_first(session: Session) -> None:
        if session.bind is store.engine:
            commits.append(1)
            if not first_commit.is_set():
                first_commit.set()
                assert gate.wait(WAIT)

    first = _Recorder(store, "node-a", recipient_of[ids[0]])
    first.start()
    assert first_commit.wait(WAIT)
    others = [_Recorder(store, "node-a", recipient_of[i]) for i in ids[1:4]]
    others.append(_Recorder(store, "node-b", recipient_of[ids[4]]))  # holds no lease
    for thread in others:
        thread.start()
    while store._outcomes.waiting < 4:
        threading.Event().wait(0.01)
    assert all(t.is_alive() and t.result is None for t in [first, *others])
    gate.set()
    for thread in [first, *others]:
        thread.join(WAIT)

    assert [t.result for t in [first, *others]] == [[True]] * 4 + [[False]]
    assert len(commits) == 2  # five jobs, two transactions
    states = [store.get_message(i).state for i in ids]
    assert states == [MessageState.DONE] * 4 + [MessageState.ACTIVE]
    lease = store.get_message(ids[4]).recipients[0]
    assert lease.state == RecipientState.QUEUED
