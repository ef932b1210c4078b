"""The socketpair over which serve asks its delivery child for metrics at scrape time."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from phigate.observability.metrics_link import MetricsLink, serve_metrics

Linked = Callable[..., tuple[MetricsLink, threading.Thread]]


@pytest.fixture
def linked() -> Iterator[Linked]:
    """A parent's link to a child's answering thread; closed (and the thread ended) after."""
    made: list[tuple[MetricsLink, threading.Thread]] = []

    def link(render: Callable[[], bytes], timeout: float = 2.0
             ) -> tuple[MetricsLink, threading.Thread]:
        ours, theirs = socket.socketpair()
        parent = MetricsLink(timeout=timeout)
        parent.attach(ours)
        made.append((parent, serve_metrics(theirs, render)))
        return made[-1]

    yield link
    for parent, thread in made:
        parent.attach(None)
        thread.join(5)


def test_each_fetch_gets_the_childs_current_exposition(linked: Linked) -> None:
    count = iter(range(100))
    link, _ = linked(lambda: b"phigate_x %d\n" % next(count))
    assert link.fetch() == b"phigate_x 0\n"
    assert link.fetch() == b"phigate_x 1\n"
    big = b"#" * 300_000  # more than one socket buffer
    link2, _ = linked(lambda: big)
    assert link2.fetch() == big


def test_a_late_answer_is_dropped_and_the_next_scrape_gets_its_own(linked: Linked) -> None:
    release = threading.Event()
    calls: list[int] = []

    def render() -> bytes:
        calls.append(1)
        if len(calls) == 1:
            release.wait(10)  # the first scrape's answer comes after its timeout
        return b"answer %d\n" % len(calls)

    link, thread = linked(render, timeout=0.3)
    assert link.fetch() is None
    release.set()
    assert link.fetch() == b"answer 2\n"  # not the stale "answer 1"
    assert link.fetch() == b"answer 3\n"
    link.attach(None)
    thread.join(5)


def test_a_gone_child_or_no_child_is_missing_metrics_not_an_error() -> None:
    ours, theirs = socket.socketpair()
    link = MetricsLink(timeout=1.0)
    assert link.fetch() is None  # nothing attached yet
    link.attach(ours)
    theirs.close()
    assert link.fetch() is None
    link.attach(None)
    assert link.fetch() is None


def test_a_render_that_fails_answers_empty_and_the_child_keeps_answering(
        linked: Linked) -> None:
    calls: list[int] = []

    def render() -> bytes:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return b"ok\n"

    link, thread = linked(render)
    assert link.fetch() == b""
    assert link.fetch() == b"ok\n"
    link.attach(None)  # the parent closes its end: the child's thread ends
    thread.join(5)
    assert not thread.is_alive()
