"""``serve``'s graceful stop: one grace period for the last sessions and the running
deliveries together, then a short, bounded close (issue 14: SIGTERM ends ``serve`` within
``[delivery] shutdown_timeout_seconds`` whatever a worker is doing)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from phigate.observability.labels import ListenerLabel
from phigate.observability.logs import log_event

if TYPE_CHECKING:
    from phigate.mta.submission.sessions import OpenSession
    from phigate.serve import RunningServices

log = logging.getLogger("phigate.serve")

#: Beyond the grace period, what closing (delivery's lease release) may take.
LEASE_RELEASE_SECONDS = 5.0
#: Each closer gets at least this long, even when the release took all the time left.
MIN_CLOSE_SECONDS = 0.5


async def stop_services(running: RunningServices, *, grace: float | None = None) -> None:
    """Stop accepting, let sessions and deliveries finish within one grace period
    (``[delivery] shutdown_timeout_seconds`` unless ``grace`` is given), then close.

    Sessions and deliveries share that one period: delivery is told to stop as the
    listeners close (a client idling on a pooled connection used to take the whole period
    first, and delivery then waited for its jobs as long again). Everything after the
    period, delivery's lease release included (it happens even when cancelled, see the
    scheduler's shutdown) and the closers, shares :data:`LEASE_RELEASE_SECONDS`.
    """
    if grace is None:
        grace = running.runtime.settings.delivery.shutdown_timeout_seconds
    names: tuple[ListenerLabel, ...] = ("submission", "feedback", "http")
    for name in names:
        running.health.listener_down(name)
    for server in running.servers:
        server.close()  # stop accepting; sessions in progress go on
    deadline = time.monotonic() + grace
    final = deadline + LEASE_RELEASE_SECONDS
    stopping = [asyncio.ensure_future(stop()) for stop in running.stoppers]
    # Sessions leave their listener's set as they end (no event to await): poll them.
    while _open_sessions(running) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    left = _open_sessions(running)
    if left:
        # Past the grace period: tell each client (a 421 it retries on) before closing.
        log_event(log, "sessions_closed_at_shutdown", level=logging.WARNING,
                  sessions=len(left))
        for session in left:
            session.say_shutting_down()
    if stopping:
        await _bounded(asyncio.gather(*stopping), final)
    for close in running.closers:
        await _bounded(close(), max(final, time.monotonic() + MIN_CLOSE_SECONDS))
    running.runtime.close()


def _open_sessions(running: RunningServices) -> list[OpenSession]:
    """The sessions in progress on the submission and feedback listeners."""
    found: list[OpenSession] = list(running.feedback_sessions)
    if running.submission is not None:
        found += running.submission.open_sessions
    return found


async def _bounded(step: Awaitable[object], until: float) -> None:
    try:
        await asyncio.wait_for(step, max(0.0, until - time.monotonic()))
    except TimeoutError:
        log_event(log, "shutdown_timeout", level=logging.WARNING)
