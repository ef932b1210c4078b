"""Time bounds on the HTTP listener, so slow clients cannot hold its descriptors.

aiohttp has no header-read timeout: a connection that never finishes its first request
head stays open (issue 14: 200 unfinished requests were still open after 80 s; its
keep-alive timeout only applies once a response has been sent). :class:`TimedTCPSite` wraps
each connection's protocol in :class:`HeadDeadline`, which closes the connection unless a
whole request head (up to the blank line) arrives within ``header_timeout_seconds``; after
the first response aiohttp's keep-alive timeout, set to the same value, bounds idle time.
The body is read by a middleware under its own bound before any handler runs (aiohttp keeps
what it read, so the handler's ``request.read()`` returns it at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from phigate.config import HttpSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_END_OF_HEAD = b"\r\n\r\n"


class HeadDeadline(asyncio.Protocol):
    """A connection's protocol, closed if its first request head is not complete in time."""

    def __init__(self, inner: Any, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds
        self._tail = b""
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(self.seconds, self._expired)
        self.inner.connection_made(transport)

    def _expired(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            # Only the last 3 bytes can start an end of head that this chunk completes.
            if _END_OF_HEAD in self._tail + data:
                self._timer.cancel()
                self._timer = None
            self._tail = (self._tail + data)[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self.inner.eof_received()
        return result

    def connection_lost(self, error: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport = None
        self.inner.connection_lost(error)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class TimedTCPSite(web.TCPSite):
    """``web.TCPSite`` whose connections get a :class:`HeadDeadline`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *,
                 header_timeout_seconds: float) -> None:
        super().__init__(runner, host, port)
        self.header_timeout_seconds = header_timeout_seconds

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        if server is None:
            raise RuntimeError("the runner is not set up")
        seconds = self.header_timeout_seconds
        self._server = await asyncio.get_running_loop().create_server(
            lambda: HeadDeadline(server(), seconds), self._host, self._port,
            backlog=self._backlog, reuse_address=self._reuse_address,
        )


def body_timeout_middleware(seconds: float) -> Any:
    @web.middleware
    async def read_body_in_time(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists:
            try:
                async with asyncio.timeout(seconds):
                    await request.read()
            except TimeoutError:
                return web.Response(status=408, text="request body too slow\n",
                                    headers={"Connection": "close"})
        return await handler(request)

    return read_body_in_time


def runner_options(settings: HttpSettings) -> dict[str, Any]:
    """Keyword arguments for ``web.AppRunner`` (passed on to each connection's handler)."""
    return {"access_log": None, "keepalive_timeout": settings.header_timeout_seconds}
