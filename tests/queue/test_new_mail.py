"""The "new mail is queued" signal: fired after the commit, only for mail to deliver, and
a listener that fails costs neither the commit nor the other listeners."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from phigate.queue.models import Message, MessageState
from phigate.queue.new_mail import NewMail
from phigate.queue.store import NewMessage, SqlQueueStore
from phigate.runtime import Runtime


def new_message(state: MessageState = MessageState.ACTIVE) -> NewMessage:
    return NewMessage(sender="app@practice.test", recipients=["p@example.org"],
                      body=b"Subject: x\r\n\r\nhi\r\n", state=state)


def committed_messages(store: SqlQueueStore) -> int:
    with store.reading() as session:
        return int(session.execute(select(func.count()).select_from(Message)).scalar_one())


def test_enqueue_fires_after_the_commit_for_mail_to_deliver_only(runtime: Runtime) -> None:
    store = runtime.store
    seen: list[int] = []
    # What a listener sees must already be durable: another connection can read it.
    store.new_mail.subscribe(lambda: seen.append(committed_messages(store)))
    store.enqueue(new_message())
    assert seen == [1]
    store.enqueue(new_message(MessageState.QUARANTINED))
    store.enqueue(new_message(MessageState.AWAITING_APPROVAL))
    store.enqueue(new_message(MessageState.HELD))
    assert seen == [1]  # nothing for delivery to claim: no wake-up
    store.enqueue(new_message())
    assert seen == [1, 5]


def test_a_failing_listener_costs_neither_the_commit_nor_the_others(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    store = runtime.store
    calls: list[str] = []

    def broken() -> None:
        calls.append("broken")
        raise RuntimeError("loop closed: p@example.org")

    store.new_mail.subscribe(broken)
    store.new_mail.subscribe(lambda: calls.append("ok"))
    with caplog.at_level(logging.WARNING):
        message_id = store.enqueue(new_message())
    assert calls == ["broken", "ok"]
    assert store.get_message(message_id).state == MessageState.ACTIVE
    assert "new_mail_listener_failed error=RuntimeError" in caplog.text
    assert "example.org" not in caplog.text  # the error's text is not logged


def test_unsubscribed_listeners_are_not_called() -> None:
    signal = NewMail()
    calls: list[str] = []
    stop_first = signal.subscribe(lambda: calls.append("first"))
    signal.subscribe(lambda: calls.append("second"))
    signal.notify()
    stop_first()
    stop_first()  # twice is harmless
    signal.notify()
    assert calls == ["first", "second", "second"]
