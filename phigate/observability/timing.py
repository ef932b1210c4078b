"""Where one accepted message's time went: named stages and their milliseconds.

Submission keeps one :class:`StageTimes` per mail transaction (MAIL to the ``250``) and,
when the log level is debug, writes it as one ``accept_timing`` line before ``accepted``
(:mod:`phigate.mta.submission.server`): the queue id, then ``<stage>_ms`` fields and a few
counts. Stages are the client's turns (``client``: its next command on its way, as the
event loop got to it; ``data_read``), each worker thread's queue, run and the event loop's
delay in resuming the session after it (``<hop>_queue``, ``_run``, ``_resume``), the scan,
the group commit's queue and write and the writer's turn, and the garbage collection pauses
while the transaction was open (``gc``, once :data:`GC_PAUSES` is installed). Nothing here
holds message data: names and numbers. ``bench/relay_vs_postfix.py --timings`` joins the
lines with the client's latencies to show where the slowest acceptances' time goes.

The cost when nobody reads the line is a few ``perf_counter`` calls per stage (~20 per
message: microseconds), so the record is always kept and only the line depends on the level.

Code below the session (the queue's group commit runs in a worker thread) adds its stages
through :func:`note`, which finds the transaction's record in a context variable:
``asyncio.to_thread`` runs its function in a copy of the caller's context.
"""

from __future__ import annotations

import contextvars
import gc
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from phigate.observability.logs import log_event

T = TypeVar("T")

_CURRENT: contextvars.ContextVar[StageTimes | None] = contextvars.ContextVar(
    "phigate_stage_times", default=None)


class GcPauses:
    """Seconds the interpreter spent in garbage collection since :meth:`install` (every
    thread waits for it: it holds the GIL)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._began = 0.0
        self.installed = False

    def install(self) -> None:
        if not self.installed:
            gc.callbacks.append(self._callback)
            self.installed = True

    def uninstall(self) -> None:
        if self.installed:
            gc.callbacks.remove(self._callback)
            self.installed = False

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._began
        self.collections[info["generation"]] += 1


GC_PAUSES = GcPauses()


@dataclass
class StageTimes:
    """Milliseconds per stage name (repeated stages add up: two RCPTs, one ``rcpt_run``)."""

    started: float = field(default_factory=time.perf_counter)
    ms: dict[str, float] = field(default_factory=dict)
    #: ``GC_PAUSES.seconds`` when the transaction began (its share is the difference).
    gc_at_start: float = field(default_factory=lambda: GC_PAUSES.seconds)
    #: When the last worker thread's function returned (see :func:`resumed`).
    thread_ended: float | None = None
    #: Counts observed along the way (``scans_in_flight``, ``commit_batch``).
    counts: dict[str, int] = field(default_factory=dict)
    #: The end of the last stage :meth:`lap` recorded.
    mark: float = 0.0

    def __post_init__(self) -> None:
        self.mark = self.started

    def lap(self, stage: str) -> None:
        """Add the time since the last lap (or the start) to ``stage``."""
        self.mark = self.since(stage, self.mark)

    def add(self, stage: str, seconds: float) -> None:
        self.ms[stage] = self.ms.get(stage, 0.0) + seconds * 1000

    def since(self, stage: str, start: float) -> float:
        """Add ``now - start`` to ``stage``; returns now (the next stage's start)."""
        now = time.perf_counter()
        self.add(stage, now - start)
        return now

    def count(self, name: str, value: int) -> None:
        self.counts[name] = value

    def fields(self) -> dict[str, float]:
        """The log line's fields: every stage, the whole (``total_ms``) and GC's share."""
        out: dict[str, float] = {f"{stage}_ms": round(value, 2)
                                 for stage, value in self.ms.items()}
        out.update(self.counts)
        if GC_PAUSES.installed:
            out["gc_ms"] = round((GC_PAUSES.seconds - self.gc_at_start) * 1000, 2)
        out["total_ms"] = round((time.perf_counter() - self.started) * 1000, 2)
        return out


def begin_transaction() -> StageTimes:
    """A new record, current in the calling task (a session's: aiosmtpd runs a session's
    commands in one task) until :func:`end_transaction`."""
    times = StageTimes()
    _CURRENT.set(times)
    return times


def end_transaction() -> StageTimes | None:
    """The transaction's record, no longer current."""
    times = _CURRENT.get()
    _CURRENT.set(None)
    return times


def log_accepted(log: logging.Logger, message_id: str) -> None:
    """End the transaction; at debug level its stages as one ``accept_timing`` line."""
    times = end_transaction()
    if times is not None and log.isEnabledFor(logging.DEBUG):
        times.lap("loop")
        log_event(log, "accept_timing", level=logging.DEBUG, id=message_id, **times.fields())


def current() -> StageTimes | None:
    """The transaction's record in this task or worker thread, if any."""
    return _CURRENT.get()


def lap(stage: str) -> None:
    """The current record's :meth:`StageTimes.lap` (nothing outside a transaction)."""
    times = _CURRENT.get()
    if times is not None:
        times.lap(stage)


@contextmanager
def lapped(stage: str) -> Iterator[None]:
    """Around an await in the session's task: the time before it is ``loop`` (the session's
    own work on the event loop since the last lap), the time in it ``stage``."""
    lap("loop")
    try:
        yield
    finally:
        lap(stage)


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Add the time spent in the block to ``stage``, leaving the laps alone (for a worker
    thread's part of a hop)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        note(stage, time.perf_counter() - started)


def note(stage: str, seconds: float) -> None:
    """Add to the current transaction's ``stage`` (nothing outside one)."""
    times = _CURRENT.get()
    if times is not None:
        times.add(stage, seconds)


def note_count(name: str, value: int) -> None:
    times = _CURRENT.get()
    if times is not None:
        times.count(name, value)


def off_loop(prefix: str, function: Callable[..., T], *args: Any) -> Callable[[], T]:
    """``function(*args)`` for a worker thread, called from the session's task: records
    ``<prefix>_queue`` (submitted to started: the pool's threads all busy) and
    ``<prefix>_run``, with the record current in the thread for :func:`note` (also under
    ``run_in_executor``, which does not copy the caller's context). Call :func:`resumed`
    with the same prefix once awaited."""
    times = _CURRENT.get()
    if times is None:
        return lambda: function(*args)
    submitted = times.mark = times.since("loop", times.mark)

    def call() -> T:
        started = times.since(f"{prefix}_queue", submitted)
        token = _CURRENT.set(times)
        try:
            return function(*args)
        finally:
            _CURRENT.reset(token)
            times.thread_ended = times.since(f"{prefix}_run", started)

    return call


def resumed(prefix: str) -> None:
    """``<prefix>_resume``: from the thread's end to the session running again."""
    times = _CURRENT.get()
    if times is not None and times.thread_ended is not None:
        times.mark = times.since(f"{prefix}_resume", times.thread_ended)
        times.thread_ended = None
