"""Group commit of accepted messages (issue 16 item 4): several messages per transaction,
each enqueue returning only once the transaction holding its message committed."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from phigate.queue.models import Message
from phigate.queue.store import NewMessage, SqlQueueStore
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


def _commits(store: SqlQueueStore, hooks: Any) -> list[int]:
    """Messages inserted by each committed transaction of ``store``'s engine."""
    sizes: list[int] = []
    pending: dict[int, int] = {}

    @hooks("after_flush")
    def flushed(session: Session, _context: Any) -> None:
        if session.bind is store.engine:
            pending[id(session)] = pending.get(id(session), 0) + sum(
                isinstance(o, Message) for o in session.new)

    @hooks("after_commit")
    def committed(session: Session) -> None:
        if id(session) in pending:
            sizes.append(pending.pop(id(session)))

    return sizes


@pytest.fixture
def hooks() -> Any:
    """``hooks(name)`` decorates a Session event listener, removed after the test."""
    added: list[tuple[str, Any]] = []

    def listen(name: str) -> Any:
        def register(fn: Any) -> Any:
            event.listen(Session, name, fn)
            added.append((name, fn))
            return fn
        return register

    yield listen
    for name, fn in added:
        event.remove(Session, name, fn)


def test_messages_waiting_for_a_commit_share_the_next_one(runtime: Runtime, hooks: Any) -> None:
    store = runtime.store
    sizes = _commits(store, hooks)
    gate = threading.Event()
    first_commit = threading.Event()

    @hooks("before_commit")
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

    @hooks("before_commit")
    def hold_the_first(session: Session) -> None:
        if session.bind is store.engine and not first_commit.is_set():
            first_commit.set()
            assert gate.wait(WAIT)

    @hooks("before_flush")
    def refuse_one(session: Session, _context: Any, _instances: Any) -> None:
        if any(isinstance(o, Message) and o.sender == "bad@practice.test"
               for o in session.new):
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
