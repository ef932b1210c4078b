"""The prepare step's daemon threads: reused when idle, never held up by a stuck step."""

from __future__ import annotations

import asyncio
import threading

import pytest
from helpers.wait import wait_until_sync

from phigate.mta.delivery.prepare import DaemonThreads, PrepareTimeout, run_bounded


def _names_of_live(name: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == name]


def test_sequential_calls_reuse_one_thread() -> None:
    threads = DaemonThreads(name="test-reuse")
    seen: list[int] = []
    done = threading.Event()

    def note() -> None:
        seen.append(threading.get_ident())
        done.set()

    for _ in range(20):
        done.clear()
        threads.submit(note)
        assert done.wait(5)
        wait_until_sync(lambda: threads._idle == 1, timeout=5)
    assert len(set(seen)) == 1
    assert len(_names_of_live("test-reuse")) == 1
    assert all(thread.daemon for thread in _names_of_live("test-reuse"))


def test_a_stuck_call_does_not_keep_the_next_waiting() -> None:
    threads = DaemonThreads(name="test-stuck")
    release, finished = threading.Event(), threading.Event()
    threads.submit(lambda: release.wait(30))  # stuck until the end of the test
    threads.submit(finished.set)
    assert finished.wait(5)
    assert len(_names_of_live("test-stuck")) == 2
    release.set()


def test_idle_threads_end_after_their_idle_time() -> None:
    threads = DaemonThreads(name="test-idle", idle_seconds=0.2)
    gate = threading.Barrier(4, timeout=5)
    for _ in range(3):
        threads.submit(gate.wait)
    gate.wait()  # three threads ran at once
    wait_until_sync(lambda: not _names_of_live("test-idle"), timeout=5)
    assert threads._idle == 0
    done = threading.Event()
    threads.submit(done.set)  # and a new one starts after they are gone
    assert done.wait(5)


async def test_run_bounded_gives_the_result_the_error_or_a_timeout() -> None:
    assert await run_bounded(lambda: 41 + 1, timeout=5) == 42

    def fails() -> None:
        raise ValueError("bad body")

    with pytest.raises(ValueError, match="bad body"):
        await run_bounded(fails, timeout=5)
    release = threading.Event()
    with pytest.raises(PrepareTimeout):
        await run_bounded(lambda: release.wait(30), timeout=0.2)
    # The stuck step holds one thread; the next step still runs at once.
    assert await asyncio.wait_for(run_bounded(lambda: "next", timeout=5), 5) == "next"
    release.set()


async def test_a_cancelled_wait_drops_the_steps_late_result() -> None:
    started, release, ended = threading.Event(), threading.Event(), threading.Event()
    loop_errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context:
                                                     loop_errors.append(context))

    def step() -> str:
        started.set()
        release.wait(5)
        ended.set()
        return "late"

    waiting = asyncio.ensure_future(run_bounded(step, timeout=30))
    assert await asyncio.to_thread(started.wait, 5)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release.set()
    assert await asyncio.to_thread(ended.wait, 5)
    # The late result is handed to the loop and dropped: the next step still runs, and
    # nothing failed in a callback (a result set on a cancelled future would).
    assert await run_bounded(lambda: "next", timeout=5) == "next"
    await asyncio.sleep(0.05)
    assert loop_errors == []
