"""A process pool of scanners, so scanning never blocks the relay's event loop.

Each worker is a spawned process that builds one :class:`Scanner` (model and vocabularies),
scans a warm-up message and only then says it is ready: :meth:`ScannerPool.warm_up` returns
once every worker has. A worker talks to the relay over a socket pair of its own, one
message at a time: a frame in (a length, a flag, the raw message), a frame out (a length, a
kind, the pickled :class:`ScanResult`). The relay reads the answers on its event loop
(``add_reader``): no feeder or result thread, no futures crossing threads, one wake-up per
result. It replaced a ``concurrent.futures.ProcessPoolExecutor`` whose trip alone cost
~0.6 ms of worker CPU and ~0.5 ms of relay CPU per message (issue 16).

A scan never raises and never passes a message unscanned: a scan that exceeds
``timeout_seconds``, whose worker dies (a crash, the OOM killer) or answers with a frame that
makes no sense, or that the pool cannot run (closed, workers that cannot start) gives an
``unscannable`` result with verdict ``phi`` (fail closed). The worker is killed and replaced;
the other workers, and the messages they are scanning, are not touched.

The time limit is the time a worker spends on the message, not the time it waited for a
free worker: a message is handed to an idle worker only, the others wait here in order.
Under load a queue of messages would otherwise run out their clocks waiting behind each
other. A replacement's start-up (loading the model) is not counted against any message:
it takes messages once it is ready.

A result comes back without its findings unless asked for (``with_findings``): the relay
decides on the verdict, score, categories and notes, and the findings, with their text,
were most of what crossed the pipe and what the relay process spent unpickling.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from phigate.phi_scanner.findings import ScanResult
from phigate.phi_scanner.pool_worker import (
    _REPLY,
    _REQUEST,
    FLAG_FINDINGS,
    MAX_MESSAGE_BYTES,
    MAX_REPLY_BYTES,
    READY,
    RESULT,
    ScannerFactory,
    _decode,
    _Job,
    _kill,
    _shut,
    _Worker,
    _worker_main,
    build_scanner,
)

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from phigate.config import ScannerSettings

logger = logging.getLogger(__name__)

#: A worker gets this long to load its model and scan the warm-up message.
START_SECONDS = 120.0
#: After a worker failed to start, the next start waits this long, doubled on each failure.
RESTART_DELAY_SECONDS = 0.5
MAX_RESTART_DELAY_SECONDS = 30.0


class ScannerPool:
    """Started on first use (or by :meth:`warm_up`) on the running event loop, which it
    then belongs to; ``workers = 0`` means one process per core."""

    def __init__(self, settings: ScannerSettings, *,
                 scanner_factory: ScannerFactory = build_scanner) -> None:
        self.settings = settings
        self.size = settings.workers or os.cpu_count() or 1
        self._factory = scanner_factory
        # spawn, not fork: the relay process runs an event loop and threads.
        self._context = multiprocessing.get_context("spawn")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[_Worker] = []
        self._idle: deque[_Worker] = deque()
        self._waiting: deque[_Job] = deque()
        self._closed = False
        self._close_lock = threading.Lock()
        #: A graceful close lets the workers end by themselves: none is killed then.
        self._graceful_close = False
        #: Starts that failed in a row (the backoff's exponent); 0 once a worker is ready.
        self._start_failures = 0
        self._ending: list[BaseProcess] = []  # killed, not yet reaped
        self._reaping: asyncio.TimerHandle | None = None

    # -- public ------------------------------------------------------------------------

    async def warm_up(self) -> None:
        """Start the workers and wait until each has loaded its model (or failed to)."""
        self._ensure_started()
        await asyncio.gather(*(worker.started for worker in list(self._workers)))

    async def scan(self, raw: bytes, *, with_findings: bool = False) -> ScanResult:
        """``raw``'s scan result; its findings only ``with_findings`` (see the module)."""
        if self._closed:
            return ScanResult.unscannable_result("scanner pool closed")
        if len(raw) > MAX_MESSAGE_BYTES:
            return ScanResult.unscannable_result("message too large to scan")
        self._ensure_started()
        if self._start_failures and not self._has_ready_worker():
            return ScanResult.unscannable_result("scanner workers cannot start")
        assert self._loop is not None  # noqa: S101 - set by _ensure_started
        job = _Job(raw, with_findings, self._loop.create_future())
        if self._idle:
            self._dispatch(self._idle.popleft(), job)
        else:
            self._waiting.append(job)
        return await job.result

    def worker_pids(self) -> list[int]:
        """The process ids of the workers now running or starting."""
        return [worker.process.pid for worker in self._workers
                if worker.process.pid is not None]

    def close(self, *, graceful: bool = True) -> None:
        """Stop the workers: let each exit by itself once its socket closes (a few seconds
        each, to unload the model), or, not ``graceful``, kill them at once. Scans in flight
        or waiting end unscannable. Safe to call from any thread, and more than once."""
        with self._close_lock:
            if self._closed:
                return
            self._graceful_close = graceful
            self._closed = True
        workers = list(self._workers)
        for worker in workers:
            if graceful:
                _shut(worker.channel)  # the worker reads EOF and returns
            else:
                _kill(worker.process)
        self._on_loop(self._detach_all)
        for process in [worker.process for worker in workers] + self._ending:
            process.join(timeout=5 if graceful else 1)
            if process.is_alive():
                process.kill()
                process.join(timeout=1)

    # -- starting and replacing workers ------------------------------------------------

    def _ensure_started(self) -> None:
        if self._loop is None and not self._closed:
            self._loop = asyncio.get_running_loop()
            for _ in range(self.size):
                self._start_worker()

    def _start_worker(self) -> None:
        assert self._loop is not None  # noqa: S101
        try:
            ours, theirs = socket.socketpair()
        except OSError as error:  # out of descriptors
            self._start_failed(error)
            return
        process = self._context.Process(
            target=_worker_main, args=(theirs, self.settings, os.getpid(), self._factory),
            name="phigate-scanner", daemon=True)
        # From the event loop's thread: PR_SET_PDEATHSIG is tied to the starting thread.
        try:
            process.start()
        except OSError as error:
            ours.close()
            self._start_failed(error)
            return
        finally:
            theirs.close()  # the worker's copy is its only one: its end closes when it dies
        ours.setblocking(False)
        worker = _Worker(process, ours, self._loop.create_future())
        worker.deadline = self._loop.call_later(START_SECONDS, self._start_timed_out, worker)
        self._workers.append(worker)
        self._loop.add_reader(ours.fileno(), self._on_readable, worker)

    def _start_timed_out(self, worker: _Worker) -> None:
        if worker.state == "starting":
            logger.warning("scanner worker start timed out seconds=%s", START_SECONDS)
            self._lose(worker, "scanner worker did not start")

    def _has_ready_worker(self) -> bool:
        return any(worker.state in ("idle", "busy") for worker in self._workers)

    def _lose(self, worker: _Worker, reason: str) -> None:
        """``worker`` is of no more use: kill it, fail its message, start another."""
        if worker.state == "gone":
            return
        was_starting = worker.state == "starting"
        job = worker.job
        self._detach(worker)
        if job is not None and not job.result.done():
            job.result.set_result(ScanResult.unscannable_result(reason))
        if self._closed:
            return
        if was_starting:
            self._start_failed(None)
        else:
            self._start_worker()

    def _start_failed(self, error: OSError | None) -> None:
        """A worker could not start: try again later, and, with no worker ready, fail the
        messages waiting rather than let them wait for a model that may never load."""
        if error is not None:
            logger.warning("scanner worker could not start error=%s", type(error).__name__)
        self._start_failures += 1
        if not self._has_ready_worker():
            self._fail_waiting("scanner workers cannot start")
        delay = min(MAX_RESTART_DELAY_SECONDS,
                    RESTART_DELAY_SECONDS * 2 ** (self._start_failures - 1))
        assert self._loop is not None  # noqa: S101
        self._loop.call_later(delay, self._restart_after_failure)

    def _restart_after_failure(self) -> None:
        if not self._closed:
            self._start_worker()

    def _detach(self, worker: _Worker) -> None:
        """Take ``worker`` out of the pool (on the loop): its socket, timer and process."""
        worker.state = "gone"
        worker.job = None
        if worker.deadline is not None:
            worker.deadline.cancel()
        if worker in self._workers:
            self._workers.remove(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        assert self._loop is not None  # noqa: S101
        if not self._loop.is_closed():
            self._loop.remove_reader(worker.channel.fileno())
            self._loop.remove_writer(worker.channel.fileno())
        worker.channel.close()
        if not worker.started.done():
            worker.started.set_result(False)
        if not (self._closed and self._graceful_close):
            _kill(worker.process)
        self._ending.append(worker.process)
        if self._reaping is None:
            self._reap()

    def _reap(self) -> None:
        """Collect killed workers that have ended (no zombies left behind), without waiting."""
        self._reaping = None
        self._ending = [process for process in self._ending if process.is_alive()]
        if self._ending and self._loop is not None and not self._closed:
            self._reaping = self._loop.call_later(0.2, self._reap)

    # -- messages ----------------------------------------------------------------------

    def _dispatch(self, worker: _Worker, job: _Job) -> None:
        assert self._loop is not None  # noqa: S101
        worker.state, worker.job = "busy", job
        # The clock starts now, when a worker takes the message.
        worker.deadline = self._loop.call_later(self.settings.timeout_seconds,
                                                self._timed_out, worker, job)
        flags = FLAG_FINDINGS if job.with_findings else 0
        self._send(worker, memoryview(_REQUEST.pack(len(job.raw), flags) + job.raw))

    def _send(self, worker: _Worker, data: memoryview) -> None:
        try:
            sent = worker.channel.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._lose(worker, "scanner worker crashed")
            return
        assert self._loop is not None  # noqa: S101
        if sent < len(data):  # a big message: the rest as the worker reads
            if worker.unsent is None:
                self._loop.add_writer(worker.channel.fileno(), self._on_writable, worker)
            worker.unsent = data[sent:]
        elif worker.unsent is not None:
            worker.unsent = None
            self._loop.remove_writer(worker.channel.fileno())

    def _on_writable(self, worker: _Worker) -> None:
        if worker.unsent is not None:
            self._send(worker, worker.unsent)

    def _timed_out(self, worker: _Worker, job: _Job) -> None:
        if worker.job is job:
            logger.warning("scan timed out seconds=%s", self.settings.timeout_seconds)
            self._lose(worker, "scan time limit exceeded")

    def _on_readable(self, worker: _Worker) -> None:
        try:
            data = worker.channel.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            if worker.state == "starting":
                logger.warning("scanner worker failed to start exitcode=%s",
                               worker.process.exitcode)
            else:
                logger.warning("scanner worker crashed")
            self._lose(worker, "scanner worker crashed")
            return
        worker.received += data
        while worker.state != "gone" and len(worker.received) >= _REPLY.size:
            length, kind = _REPLY.unpack_from(worker.received)
            if length > MAX_REPLY_BYTES:
                self._malformed(worker)
                return
            end = _REPLY.size + length
            if len(worker.received) < end:
                return  # the rest of the frame is on its way
            payload = bytes(worker.received[_REPLY.size:end])
            del worker.received[:end]
            self._on_reply(worker, kind, payload)

    def _on_reply(self, worker: _Worker, kind: int, payload: bytes) -> None:
        if kind == READY and worker.state == "starting" and not payload:
            self._ready(worker)
        elif kind == RESULT and worker.state == "busy":
            result = _decode(payload)
            if result is None:
                self._malformed(worker)
            else:
                self._done(worker, result)
        else:
            self._malformed(worker)

    def _malformed(self, worker: _Worker) -> None:
        logger.warning("scanner worker sent a malformed reply state=%s", worker.state)
        self._lose(worker, "scanner worker sent a malformed reply")

    def _ready(self, worker: _Worker) -> None:
        if worker.deadline is not None:
            worker.deadline.cancel()
        worker.state = "idle"
        self._start_failures = 0
        worker.started.set_result(True)
        self._next(worker)

    def _done(self, worker: _Worker, result: ScanResult) -> None:
        job = worker.job
        if worker.deadline is not None:
            worker.deadline.cancel()
        worker.state, worker.job = "idle", None
        if job is not None and not job.result.done():  # not if the caller gave up
            job.result.set_result(result)
        self._next(worker)

    def _next(self, worker: _Worker) -> None:
        """An idle ``worker`` takes the oldest waiting message, or waits for one."""
        while self._waiting:
            job = self._waiting.popleft()
            if not job.result.done():  # skip a caller that gave up waiting
                self._dispatch(worker, job)
                return
        self._idle.append(worker)

    def _fail_waiting(self, reason: str) -> None:
        while self._waiting:
            job = self._waiting.popleft()
            if not job.result.done():
                job.result.set_result(ScanResult.unscannable_result(reason))

    # -- closing -----------------------------------------------------------------------

    def _on_loop(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the pool's loop: now if this is its thread (or it no longer
        runs), else soon, from there (the loop's readers and futures are not thread-safe)."""
        loop = self._loop
        if loop is None:
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop or not loop.is_running():
            action()
            return
        try:
            loop.call_soon_threadsafe(action)
        except RuntimeError:  # closed meanwhile
            action()

    def _detach_all(self) -> None:
        for worker in list(self._workers):
            job = worker.job
            self._detach(worker)
            if job is not None and not job.result.done():
                job.result.set_result(ScanResult.unscannable_result("scanner pool closed"))
        self._fail_waiting("scanner pool closed")
