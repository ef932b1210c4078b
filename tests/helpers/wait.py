"""Waiting for a condition instead of sleeping a fixed time (shared by the tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_until(condition: Callable[[], Awaitable[T] | T], *, timeout: float = 10.0,
                     interval: float = 0.05, what: str = "condition") -> T:
    """Poll ``condition`` (sync or async) until it returns something truthy; return that.

    Raises AssertionError naming ``what`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


def wait_until_sync(condition: Callable[[], T], *, timeout: float = 10.0,
                    interval: float = 0.05, what: str = "condition") -> T:
    """:func:`wait_until` for threads and plain (non-async) tests."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
