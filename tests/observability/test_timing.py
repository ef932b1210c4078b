"""phigate.observability.timing: the stages of one transaction, recorded from the session's
task and from the worker threads it hands work to (the group commit's own stages).
Structure only: which stages are there, never how long they took."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Sequence

from phigate.observability import timing
from phigate.queue.group_commit import GroupCommit


async def test_a_worker_thread_hop_records_queue_run_and_resume_and_what_it_noted() -> None:
    times = timing.begin_transaction()
    try:
        def work(value: int) -> int:
            timing.note("inner", 0.001)  # what code below the session adds
            return value * 2

        assert await asyncio.to_thread(timing.off_loop("hop", work, 21)) == 42
        timing.resumed("hop")
    finally:
        timing.end_transaction()
    assert {"loop", "hop_queue", "hop_run", "hop_resume", "inner"} <= set(times.ms)
    assert times.thread_ended is None
    assert timing.current() is None


def test_run_in_executor_gets_the_record_current_too() -> None:
    # run_in_executor does not copy the caller's context (asyncio.to_thread does):
    # off_loop makes the record current in the thread itself.
    async def main() -> timing.StageTimes:
        times = timing.begin_transaction()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, timing.off_loop("hop", timing.note, "inner", 0.0))
        timing.resumed("hop")
        assert timing.end_transaction() is times
        return times

    times = asyncio.run(main())
    assert {"inner", "hop_queue", "hop_run", "hop_resume"} <= set(times.ms)


def test_group_commit_notes_its_queue_and_write_and_the_leader_its_batch() -> None:
    commits: GroupCommit[str, None] = GroupCommit(lambda items: [None] * len(items))
    times = timing.begin_transaction()
    try:
        commits.submit("one")
    finally:
        timing.end_transaction()
    assert {"commit_queued", "commit_write"} <= set(times.ms)
    assert times.counts == {"commit_batch": 1}


def test_group_commit_outside_a_transaction_records_nothing_and_commits() -> None:
    written: list[str] = []

    def write(items: Sequence[str]) -> list[None]:
        written.extend(items)
        return [None] * len(items)

    commits: GroupCommit[str, None] = GroupCommit(write)
    done = threading.Thread(target=commits.submit, args=("one",))
    done.start()
    done.join(30)
    assert written == ["one"] and timing.current() is None


def test_fields_are_milliseconds_per_stage_counts_and_the_total() -> None:
    times = timing.StageTimes()
    times.add("scan", 0.25)
    times.add("scan", 0.25)
    times.count("commit_batch", 3)
    fields = times.fields()
    assert fields["scan_ms"] == 500.0 and fields["commit_batch"] == 3
    assert "total_ms" in fields


def test_gc_pauses_are_counted_once_installed() -> None:
    pauses = timing.GcPauses()
    gc.collect()
    assert pauses.collections == [0, 0, 0]
    pauses.install()
    try:
        gc.collect()
    finally:
        pauses.uninstall()
    assert pauses.collections[2] == 1 and pauses.seconds > 0
    gc.collect()
    assert pauses.collections[2] == 1  # uninstalled: no longer counted
