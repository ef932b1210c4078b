"""A listener's cap on concurrent sessions, whoever opens them.

The per-IP caps stop one address; a spread of addresses (51 in issue 14) could still open
sessions until the process ran out of file descriptors, and then nobody got a banner. A
listener that is full answers ``421 4.7.0`` at once and closes: a clean "try later" for a
legitimate client, and the descriptor is back a moment later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from phigate.observability.logs import log_event

log = logging.getLogger("phigate.smtp")

REPLY_LISTENER_FULL = b"421 4.7.0 Too many connections, try again later\r\n"
#: What a session still open when ``serve``'s grace period ends is told before it is closed
#: (RFC 5321 4.2.2: 421 when the service must shut down), instead of a silent reset.
REPLY_SHUTTING_DOWN = b"421 4.3.2 Service shutting down, try again later\r\n"
#: How often a full listener says so in the log (it may refuse thousands a second).
FULL_LOG_INTERVAL_SECONDS = 10.0


@dataclass
class SessionCap:
    """Open sessions of one listener, at most ``limit`` (0: no cap)."""

    listener: str
    limit: int
    open: int = 0
    refused: int = 0
    _logged_at: float = field(default=float("-inf"), repr=False)

    def try_open(self) -> bool:
        if self.limit and self.open >= self.limit:
            self.refused += 1
            now = time.monotonic()
            if now - self._logged_at >= FULL_LOG_INTERVAL_SECONDS:
                self._logged_at = now
                log_event(log, "listener_full", level=logging.WARNING, listener=self.listener,
                          limit=self.limit, refused_total=self.refused)
            return False
        self.open += 1
        return True

    def close(self) -> None:
        self.open = max(0, self.open - 1)


def refuse_full(transport: asyncio.BaseTransport, reply: bytes = REPLY_LISTENER_FULL) -> None:
    """Say 421 and close, without starting a session."""
    if isinstance(transport, asyncio.WriteTransport):
        transport.write(reply)
    transport.close()


class OpenSession(Protocol):
    """A session the graceful stop can end with a 421."""

    def say_shutting_down(self) -> None: ...


def say_shutting_down(transport: asyncio.BaseTransport | None) -> None:
    """Say 421 4.3.2 on ``transport`` (the TLS one after STARTTLS) and close it."""
    if transport is None or transport.is_closing():
        return
    if isinstance(transport, asyncio.WriteTransport):
        transport.write(REPLY_SHUTTING_DOWN)
    transport.close()
