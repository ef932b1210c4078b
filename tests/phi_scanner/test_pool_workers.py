"""The scanner pool under attack: workers that hang, die, talk garbage or cannot start, a
message at the size limit, many scans at once, a close with scans in flight.

The workers run stand-in scanners (``helpers.scan_fakes``) so that each misbehaviour happens
on cue; the real scanner through the pool is covered by ``test_pool_result`` and
``test_pool_deadline``. Whatever goes wrong, a scan gives an unscannable result (verdict
``phi``: fail closed), never an exception, and only the worker that failed is replaced.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from helpers.processes import alive
from helpers.scan_fakes import STARTED_DIR, cannot_start, echo_note, scripted
from helpers.wait import wait_until

from phigate.checks.scanner_check import probe
from phigate.config import ScannerSettings, SubmissionSettings
from phigate.phi_scanner import ScannerPool, ScanResult
from phigate.phi_scanner.pool_worker import WARM_UP_MESSAGE

SETTINGS = ScannerSettings(workers=2, ner="never", timeout_seconds=60)


@pytest.fixture
async def pool() -> AsyncIterator[ScannerPool]:
    pool = ScannerPool(SETTINGS, scanner_factory=scripted)
    await pool.warm_up()
    yield pool
    pool.close(graceful=False)


def echo(n: int) -> bytes:
    return f"echo\nmessage {n}\n".encode()


def assert_echoed(result: ScanResult, raw: bytes) -> None:
    assert result.verdict == "none" and not result.unscannable
    assert result.notes[0].startswith(echo_note(raw) + " ")


def assert_unscannable(result: ScanResult, reason: str) -> None:
    assert result.verdict == "phi" and result.unscannable
    assert result.notes == [f"unscannable: {reason}"]


async def hang(pool: ScannerPool, marks: Path, command: str = "hang"
               ) -> tuple[asyncio.Task[ScanResult], int]:
    """A scan that hangs in a worker; and that worker's pid, once it has the message."""
    marks.mkdir(exist_ok=True)
    before = set(marks.iterdir())
    task = asyncio.create_task(pool.scan(f"{command} {marks}\n".encode()))
    new = await wait_until(lambda: set(marks.iterdir()) - before, what="a worker to hang")
    return task, int(new.pop().name)


async def replaced(pool: ScannerPool, gone: int) -> None:
    """Wait until ``gone`` has ended and the pool has its full count of ready workers."""
    await wait_until(lambda: not alive(gone), what="the worker to end")
    await wait_until(lambda: gone not in pool.worker_pids()
                     and len(pool.worker_pids()) == pool.size, what="a replacement")

    async def every_worker_scans() -> bool:
        results = await asyncio.gather(*(pool.scan(echo(n)) for n in range(2 * pool.size)))
        for n, result in enumerate(results):
            assert_echoed(result, echo(n))
        return {result.notes[0].rsplit("pid=", 1)[1] for result in results} == {
            str(pid) for pid in pool.worker_pids()}

    took: bool = await wait_until(every_worker_scans, what="the replacement to take messages")
    assert took


async def test_warm_up_returns_once_every_worker_has_built_its_scanner_and_scanned(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STARTED_DIR, str(tmp_path))
    pool = ScannerPool(SETTINGS, scanner_factory=scripted)
    try:
        await pool.warm_up()
        pids = pool.worker_pids()
        assert len(pids) == 2
        assert {path.name for path in tmp_path.iterdir()} == {f"built-{pid}" for pid in pids}
        # Each worker's first message is its second scan: the warm-up message came first.
        results = await asyncio.gather(*(pool.scan(echo(n)) for n in range(2)))
        assert {"seen=2" in result.notes[0] for result in results} == {True}
    finally:
        pool.close(graceful=False)


async def test_a_hung_worker_is_killed_and_replaced_and_only_its_message_fails(
        pool: ScannerPool, tmp_path: Path) -> None:
    pool.settings = replace(SETTINGS, timeout_seconds=2)
    task, stuck = await hang(pool, tmp_path)
    # The other worker goes on scanning while this one is stuck.
    for n in range(20):
        assert_echoed(await pool.scan(echo(n)), echo(n))
    assert_unscannable(await task, "scan time limit exceeded")
    await replaced(pool, stuck)


async def test_a_worker_killed_mid_scan_is_replaced_and_only_its_message_fails(
        pool: ScannerPool, tmp_path: Path) -> None:
    task, victim = await hang(pool, tmp_path)
    others = [asyncio.create_task(pool.scan(echo(n))) for n in range(10)]
    os.kill(victim, signal.SIGKILL)
    assert_unscannable(await task, "scanner worker crashed")
    for n, other in enumerate(others):
        assert_echoed(await other, echo(n))
    await replaced(pool, victim)


async def test_a_worker_that_dies_by_itself_is_replaced(pool: ScannerPool) -> None:
    before = set(pool.worker_pids())
    assert_unscannable(await pool.scan(b"crash\n"), "scanner worker crashed")
    gone = (before - set(pool.worker_pids())).pop()
    await replaced(pool, gone)


@pytest.mark.parametrize("garbage", [
    "ffffffff02",  # a reply announcing 4 GB
    "0000000009",  # a kind of reply there is none of
    "0000000001",  # READY from a worker that is scanning
    "0000000302616263",  # a result that is no pickle
    f"{len(pickle.dumps('a verdict')):08x}02" + pickle.dumps("a verdict").hex(),  # not a result
], ids=["too-long", "unknown-kind", "ready-again", "not-a-pickle", "not-a-result"])
async def test_a_malformed_reply_fails_the_message_and_replaces_the_worker(
        pool: ScannerPool, garbage: str) -> None:
    before = set(pool.worker_pids())
    result = await pool.scan(f"garble {garbage}\n".encode())
    assert_unscannable(result, "scanner worker sent a malformed reply")
    gone = (before - set(pool.worker_pids())).pop()
    await replaced(pool, gone)


async def test_a_message_at_the_size_limit_and_a_large_result_cross_whole(
        pool: ScannerPool) -> None:
    limit = SubmissionSettings().max_message_size
    big = b"echo\n" + os.urandom(limit - 5)
    results = await asyncio.gather(pool.scan(big), pool.scan(echo(1)), pool.scan(big))
    assert_echoed(results[0], big)
    assert_echoed(results[1], echo(1))
    assert_echoed(results[2], big)
    # A reply many times a socket's buffer (the findings, when asked for) arrives whole.
    full = await pool.scan(b"findings 20000\n", with_findings=True)
    assert len(full.findings) == 20000
    assert full.findings[-1].text.startswith("https://portal.example/019999")
    slim = await pool.scan(b"findings 20000\n")
    assert slim.findings == [] and slim.verdict == "identifiers"


async def test_many_concurrent_scans_each_get_their_own_result(pool: ScannerPool) -> None:
    messages = [echo(n) + b"x" * (n * 97 % 5000) for n in range(400)]
    results = await asyncio.gather(*(pool.scan(raw) for raw in messages))
    for raw, result in zip(messages, results, strict=True):
        assert_echoed(result, raw)


async def test_a_caller_that_gives_up_leaves_the_pool_working(
        pool: ScannerPool, tmp_path: Path) -> None:
    pool.settings = replace(SETTINGS, timeout_seconds=2)
    first, _ = await hang(pool, tmp_path)
    second, _ = await hang(pool, tmp_path)
    waiting = asyncio.create_task(pool.scan(echo(0)))
    await asyncio.sleep(0)
    for task in (first, second, waiting):  # clients gone mid-DATA
        task.cancel()
    await asyncio.gather(first, second, waiting, return_exceptions=True)
    # Both workers are still stuck on messages nobody waits for: the time limit frees them,
    # and the message given up while waiting is not scanned.
    assert_echoed(await pool.scan(echo(1)), echo(1))
    assert all(task.cancelled() for task in (first, second, waiting))


@pytest.mark.parametrize("from_a_thread", [False, True], ids=["on-the-loop", "from-a-thread"])
async def test_close_with_scans_in_flight_and_waiting_fails_them_and_ends_the_workers(
        pool: ScannerPool, tmp_path: Path, from_a_thread: bool) -> None:
    first, one = await hang(pool, tmp_path)
    second, other = await hang(pool, tmp_path)
    waiting = asyncio.create_task(pool.scan(echo(0)))
    await asyncio.sleep(0)
    if from_a_thread:  # as serve closes it
        await asyncio.to_thread(pool.close, graceful=False)
    else:
        pool.close(graceful=False)
    for task in (first, second, waiting):
        assert_unscannable(await task, "scanner pool closed")
    assert not alive(one) and not alive(other)
    assert_unscannable(await pool.scan(echo(1)), "scanner pool closed")
    pool.close()  # again: no harm


async def test_a_graceful_close_lets_idle_workers_end_by_themselves() -> None:
    pool = ScannerPool(SETTINGS, scanner_factory=scripted)
    await pool.warm_up()
    processes = [worker.process for worker in pool._workers]
    pool.close()
    assert [process.exitcode for process in processes] == [0, 0]  # not killed (-9)


async def test_a_graceful_close_lets_a_busy_worker_finish_and_end_by_itself(
        tmp_path: Path) -> None:
    pool = ScannerPool(SETTINGS, scanner_factory=scripted)
    await pool.warm_up()
    task, busy = await hang(pool, tmp_path, "nap")
    process = next(worker.process for worker in pool._workers if worker.process.pid == busy)
    pool.close()
    assert_unscannable(await task, "scanner pool closed")
    # Its answer found the pool gone: the worker ends quietly (no BrokenPipeError, exit 1).
    assert process.exitcode == 0


async def test_workers_that_cannot_start_fail_scans_at_once_and_the_probe_says_so() -> None:
    pool = ScannerPool(replace(SETTINGS, workers=1), scanner_factory=cannot_start)
    try:
        await pool.warm_up()
        assert_unscannable(await pool.scan(WARM_UP_MESSAGE), "scanner workers cannot start")
        assert await probe(pool) == "unscannable: scanner workers cannot start"
    finally:
        pool.close(graceful=False)
