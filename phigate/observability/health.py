"""``/healthz``, and the aiohttp routes that serve it beside ``/metrics``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from phigate.observability.labels import ListenerLabel
from phigate.observability.metrics import METRICS, Metrics

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthReport:
    checks: Mapping[str, bool]
    #: Facts shown beside the checks (the last successful unseal), not judged.
    details: Mapping[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    @property
    def http_status(self) -> int:
        return 200 if self.ok else 503

    def body(self) -> bytes:
        status = "ok" if self.ok else "unavailable"
        return json.dumps({"status": status, "checks": dict(self.checks),
                           **dict(self.details)}).encode()


class HealthState:
    """``/healthz`` is 200 only when the database answers and every expected listener is up.

    The server calls :meth:`listener_up` after binding each listener and
    :meth:`listener_down` when it stops accepting (shutdown), so a draining node turns
    unhealthy before it goes away. ``database_check`` is a blocking callable (e.g. the
    store's ``SELECT 1``) that raises when the database is unreachable; it runs in a
    thread with a timeout, so a hung database makes the check fail instead of hang.
    """

    def __init__(
        self,
        *,
        database_check: Callable[[], object],
        listeners: Iterable[ListenerLabel],
        timeout_seconds: float = 2.0,
        metrics: Metrics = METRICS,
    ) -> None:
        self._database_check = database_check
        self._timeout = timeout_seconds
        self._metrics = metrics
        self._listeners: dict[str, bool] = {}
        self._scanner: Callable[[], Awaitable[str | None]] | None = None
        self._last_unseal: Callable[[], datetime | None] | None = None
        self._processes: dict[str, Callable[[], bool]] = {}
        for name in listeners:
            self._listeners[name] = False
            metrics.set_listener_up(name, False)

    def listener_up(self, name: ListenerLabel) -> None:
        self._listeners[name] = True
        self._metrics.set_listener_up(name, True)

    def listener_down(self, name: ListenerLabel) -> None:
        self._listeners[name] = False
        self._metrics.set_listener_up(name, False)

    def watch_scanner(self, probe: Callable[[], Awaitable[str | None]]) -> None:
        """Check the scanner pool on every request: ``probe`` scans a tiny message and
        returns None, or why it could not (a pool that cannot scan quarantines all mail)."""
        self._scanner = probe

    def watch_process(self, name: str, running: Callable[[], bool]) -> None:
        """A check named ``name``, true while ``running()`` (e.g. the delivery child)."""
        self._processes[name] = running

    def watch_unseal(self, last_unseal: Callable[[], datetime | None]) -> None:
        """Report when a body was last unsealed with the master key (None: not yet)."""
        self._last_unseal = last_unseal

    async def check(self) -> HealthReport:
        checks = {"database": await self._database_ok()}
        checks.update({f"listener:{name}": up for name, up in self._listeners.items()})
        checks.update({name: running() for name, running in self._processes.items()})
        details: dict[str, object] = {}
        if self._scanner is not None:
            problem = await self._scanner_problem(self._scanner)
            checks["scanner"] = problem is None
            details["scanner"] = "ok" if problem is None else problem
        if self._last_unseal is not None:
            moment = self._last_unseal()
            details["last_unseal"] = None if moment is None else moment.isoformat()
        return HealthReport(checks, details)

    async def _scanner_problem(self, probe: Callable[[], Awaitable[str | None]]) -> str | None:
        try:
            return await asyncio.wait_for(probe(), self._timeout * 5)
        except Exception as error:  # a pool that cannot answer is down
            return f"scanner check failed ({type(error).__name__})"

    async def _database_ok(self) -> bool:
        try:
            await asyncio.wait_for(asyncio.to_thread(self._database_check), self._timeout)
        except Exception as error:  # any failure means "not healthy"
            log.warning("healthz: database check failed error=%s", type(error).__name__)
            return False
        return True


def add_routes(app: web.Application, health: HealthState, metrics: Metrics = METRICS) -> None:
    """Serve ``GET /metrics`` and ``GET /healthz`` from an aiohttp application."""
    from aiohttp import web

    async def metrics_handler(request: web.Request) -> web.Response:
        # Off the event loop: the store gauges run a (blocking) query at scrape time.
        body, content_type = await asyncio.to_thread(metrics.render)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthz_handler(request: web.Request) -> web.Response:
        report = await health.check()
        return web.Response(
            body=report.body(), status=report.http_status,
            headers={"Content-Type": "application/json", "Cache-Control": "no-store"},
        )

    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz_handler)
