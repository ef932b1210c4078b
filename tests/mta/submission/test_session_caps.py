"""Issue 14 finding 5: a listener full of idle sessions still answers a new client (a banner
or a clean 421) and /healthz answers; the feedback listener caps sessions per IP and in all;
slow HTTP clients are cut off."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

#: Issue 14: 999 idle sessions from 51 addresses left the next client without a banner.
IDLE_SESSIONS = 1000
SOURCES = 50  # loopback addresses, 20 sessions each (the per-IP cap)


async def open_idle(port: int, source: str) -> tuple[asyncio.StreamReader,
                                                      asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    return reader, writer


async def first_line(port: int, source: str, timeout: float = 5.0) -> tuple[bytes, float]:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        return await asyncio.wait_for(reader.readline(), timeout), time.monotonic() - started
    finally:
        writer.close()


async def healthz(port: int) -> float:
    started = time.monotonic()
    async with aiohttp.ClientSession() as http, http.get(
        f"http://127.0.0.1:{port}/healthz", timeout=aiohttp.ClientTimeout(total=5),
    ) as response:
        assert response.status == 200
    return time.monotonic() - started


@pytest.mark.slow
async def test_a_listener_full_of_idle_sessions_still_answers_cleanly(
    relay_factory: Callable[..., Any],
) -> None:
    async with relay_factory(("smtp", "http"), submission={"max_sessions": IDLE_SESSIONS}
                             ) as running:
        settings = running.runtime.settings
        port = settings.submission.listen.port
        idle = []
        for index in range(IDLE_SESSIONS):
            reader, writer = await open_idle(port, f"127.0.1.{index % SOURCES + 1}")
            assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"220 ")
            idle.append(writer)
        line, seconds = await first_line(port, "127.0.2.1")
        assert line == b"421 4.7.0 Too many connections, try again later\r\n"
        assert seconds < 2
        assert await healthz(settings.http.listen.port) < 2
        idle.pop().close()
        await asyncio.sleep(0.2)
        line, seconds = await first_line(port, "127.0.2.1")
        assert line.startswith(b"220 ") and seconds < 2  # a freed place is taken at once
        for writer in idle:
            writer.close()


async def test_the_global_cap_counts_sessions_from_every_address(
    relay_factory: Callable[..., Any],
) -> None:
    async with relay_factory(("smtp",), submission={"max_sessions": 6}) as running:
        port = running.runtime.settings.submission.listen.port
        idle = [await open_idle(port, f"127.0.3.{i + 1}") for i in range(6)]
        for reader, _ in idle:
            assert (await reader.readline()).startswith(b"220 ")
        line, _ = await first_line(port, "127.0.3.9")
        assert line.startswith(b"421 4.7.0")
        for _, writer in idle:
            writer.close()
        await asyncio.sleep(0.2)
        line, _ = await first_line(port, "127.0.3.9")
        assert line.startswith(b"220 ")  # the count went back down as the sessions ended


async def test_the_feedback_listener_caps_per_ip_and_in_all(
    relay_factory: Callable[..., Any],
) -> None:
    async with relay_factory(("smtp",), feedback={"max_sessions_per_ip": 2, "max_sessions": 4}
                             ) as running:
        port = running.runtime.settings.feedback.listen.port
        first = [await open_idle(port, "127.0.4.1") for _ in range(2)]
        for reader, _ in first:
            assert (await reader.readline()).startswith(b"220 ")
        line, _ = await first_line(port, "127.0.4.1")
        assert line.startswith(b"421 4.7.0")  # the per-IP cap
        second = [await open_idle(port, "127.0.4.2") for _ in range(2)]
        for reader, _ in second:
            assert (await reader.readline()).startswith(b"220 ")
        line, _ = await first_line(port, "127.0.4.3")
        assert line == b"421 4.7.0 Too many connections, try again later\r\n"  # in all
        for _, writer in first + second:
            writer.close()


async def test_http_cuts_off_unfinished_request_heads_and_slow_bodies(
    relay_factory: Callable[..., Any],
) -> None:
    async with relay_factory(("http",), http={"header_timeout_seconds": 1.0,
                                             "body_timeout_seconds": 1.0}) as running:
        port = running.runtime.settings.http.listen.port
        unfinished = []
        for _ in range(50):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            unfinished.append((reader, writer))
        slow_body_reader, slow_body = await asyncio.open_connection("127.0.0.1", port)
        slow_body.write(b"POST /u/token HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        assert await healthz(port) < 2  # still answering meanwhile
        started = time.monotonic()
        for reader, writer in unfinished:  # each is closed by the relay: no response
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
        assert time.monotonic() - started < 5
        answer = await asyncio.wait_for(slow_body_reader.readline(), 5)
        assert answer.startswith(b"HTTP/1.1 408 ")
        slow_body.close()
