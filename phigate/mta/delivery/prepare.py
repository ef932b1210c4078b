"""The per-message prepare step (body read, decrypt, decorate, DKIM sign) under a time bound.

It runs on a daemon thread of its own, not in asyncio's default executor: a step stuck in
C or in a quadratic loop cannot be interrupted, and the default executor's threads are
joined when the event loop closes, so one stuck step kept SIGTERM from ending ``serve``.
After ``[delivery] prepare_timeout_seconds`` the scheduler stops waiting
(:class:`PrepareTimeout`, counted against the message: parked corrupt the second time);
the abandoned thread ends with the process at the latest.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

from phigate.errors import PhigateError

T = TypeVar("T")


class PrepareTimeout(PhigateError):
    """Preparing a message took longer than ``[delivery] prepare_timeout_seconds``."""


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

    threading.Thread(target=work, name="delivery-prepare", daemon=True).start()
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout)
    except TimeoutError:
        raise PrepareTimeout(f"prepare step over {timeout:g} s") from None


def _call_soon(loop: asyncio.AbstractEventLoop, *args: object) -> None:
    try:
        loop.call_soon_threadsafe(*args)  # type: ignore[arg-type]
    except RuntimeError:
        pass  # the loop is closed: nobody is waiting any more
