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

:class:`Preparer` is the step itself: what the scheduler hands to :func:`run_bounded`.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from phigate.config import Settings
from phigate.errors import PhigateError
from phigate.mta.delivery.decorate import decorate
from phigate.mta.delivery.dkim import MessageSigner, strip_internal_headers
from phigate.mta.delivery.jobs import Job
from phigate.mta.delivery.poison import PoisonMessage, check_header_block
from phigate.policy.tokens import TokenSigner
from phigate.queue.store import QueueStore

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


class Prepared(NamedTuple):
    original: bytes  # the stored body (what a DSN quotes)
    sender: str  # the envelope sender (the VERP return path under a token key)
    content: bytes  # what goes on the wire: decorated and signed


class Preparer:
    """Read one job's body, refuse a poison header block, decorate it for its recipient
    (with a token key) and sign it. Blocking: the body read waits for the database and RSA
    signing takes CPU, so it runs on a thread (:func:`run_bounded`)."""

    def __init__(self, settings: Settings, store: QueueStore, *,
                 tokens: TokenSigner | None, signer: MessageSigner | None) -> None:
        self._settings = settings
        self._store = store
        self._tokens = tokens
        self._signer = signer

    def __call__(self, job: Job) -> Prepared:
        original = self._store.read_body(job.message_id)
        if (poison := check_header_block(original)) is not None:
            raise PoisonMessage(poison)  # dkimpy would be quadratic on it, or fail
        first = job.first
        sender, content = first.sender, original
        if self._tokens is not None:
            decorated = decorate(
                original, recipient=first.address, sender=first.sender,
                message_class=first.message_class, campaign_id=first.campaign_id,
                settings=self._settings, signer=self._tokens, phi=first.phi)
            sender, content = decorated.mail_from, decorated.body
        return Prepared(original, sender, self._outbound_bytes(content))

    def _outbound_bytes(self, original: bytes) -> bytes:
        if self._signer is not None:
            return self._signer.sign(original)  # also strips X-Phigate-* headers
        return strip_internal_headers(original)


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

    def expire() -> None:
        if not future.done():
            future.set_exception(PrepareTimeout(f"prepare step over {timeout:g} s"))

    _THREADS.submit(work)
    # The time bound is a timer on our own future (once per message: wait_for over a
    # shield cost two more futures, a task's worth of callbacks and its own timer). A
    # cancelled wait cancels the future; settle() then drops the step's late result.
    expiry = loop.call_later(timeout, expire)
    try:
        return await future
    finally:
        expiry.cancel()


def _call_soon(loop: asyncio.AbstractEventLoop, *args: object) -> None:
    try:
        loop.call_soon_threadsafe(*args)  # type: ignore[arg-type]
    except RuntimeError:
        pass  # the loop is closed: nobody is waiting any more
