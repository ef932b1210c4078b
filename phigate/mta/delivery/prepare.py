"""The per-message prepare step (body read, decrypt, decorate, DKIM sign) under a time bound.

It runs on daemon threads of our own, not in asyncio's default executor: a step stuck in
C or in a quadratic loop cannot be interrupted, and the default executor's threads are
joined when the event loop closes, so one stuck step kept SIGTERM from ending ``serve``.
After ``[delivery] prepare_timeout_seconds`` the scheduler stops waiting
(:class:`PrepareTimeout`, counted against the message: parked corrupt the second time);
the abandoned thread ends with the process at the latest.

The threads are kept and reused (:class:`DaemonThreads`): a new thread per message doubled
the CPU cost of the body read (the store's database work is cheaper on a thread that has
done it before: ~0.6 ms more per message in ``delivery_bench``). A stuck thread only takes
itself out of the set; the next step starts another.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import TypeVar

from phigate.errors import PhigateError

T = TypeVar("T")


class PrepareTimeout(PhigateError):
    """Preparing a message took longer than ``[delivery] prepare_timeout_seconds``."""


#: An idle thread waits this long for the next step before it ends.
IDLE_SECONDS = 60.0


class DaemonThreads:
    """Daemon threads that run submitted calls, started as needed and reused when idle.

    Unlike :class:`concurrent.futures.ThreadPoolExecutor` there is no bound on the
    threads (a stuck call must never keep the next one waiting) and nothing joins them at
    exit. Invariant: ``_idle`` counts the threads waiting for work that no submission has
    claimed, so a call either claims one of them or starts a thread for itself.
    """

    def __init__(self, *, name: str, idle_seconds: float = IDLE_SECONDS) -> None:
        self._name = name
        self._idle_seconds = idle_seconds
        self._calls: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, call: Callable[[], object]) -> None:
        """Run ``call`` on an idle thread, or a new one; its result is dropped."""
        with self._lock:
            claimed = self._idle > 0
            if claimed:
                self._idle -= 1
        self._calls.put(call)
        if not claimed:
            threading.Thread(target=self._serve, name=self._name, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                call = self._calls.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._idle == 0:
                        continue  # every waiting thread is claimed: a call is on its way
                    self._idle -= 1
                return
            call()  # must not raise: run_bounded's work() hands every outcome back
            with self._lock:
                self._idle += 1


_THREADS = DaemonThreads(name="delivery-prepare")


async def run_bounded(step: Callable[[], T], *, timeout: float) -> T:
    """``step()`` on a daemon thread; its result, its exception, or :class:`PrepareTimeout`."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return  # we stopped waiting (timeout, cancellation)
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result = step()
        except BaseException as error:  # handed to the waiting coroutine
            _call_soon(loop, settle, None, error)
        else:
            _call_soon(loop, settle, result, None)

    _THREADS.submit(work)
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout)
    except TimeoutError:
        raise PrepareTimeout(f"prepare step over {timeout:g} s") from None


def _call_soon(loop: asyncio.AbstractEventLoop, *args: object) -> None:
    try:
        loop.call_soon_threadsafe(*args)  # type: ignore[arg-type]
    except RuntimeError:
        pass  # the loop is closed: nobody is waiting any more
