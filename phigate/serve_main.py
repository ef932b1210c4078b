"""The ``phigate serve`` process: signals, systemd's notifications, the delivery child.

:mod:`phigate.serve` composes the services of the roles; this module runs them until
SIGTERM or SIGINT as the process systemd started, with delivery beside smtp or http in a
child process it supervises (:mod:`phigate.serve_child`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Sequence

from phigate import __version__
from phigate.config import Settings
from phigate.heap import freeze_start_up_heap
from phigate.mta.delivery.wake_link import listen_for_wakes
from phigate.observability import sdnotify
from phigate.observability.logs import log_event
from phigate.observability.metrics import METRICS
from phigate.observability.metrics_link import serve_metrics
from phigate.resources import RateLimitedLoopErrors, descriptors_needed, ensure_open_files
from phigate.serve import RunningServices, start_services
from phigate.serve_child import DeliveryChild, runs_delivery_apart
from phigate.serve_stop import LEASE_RELEASE_SECONDS, stop_services

__all__ = ["serve_forever"]

log = logging.getLogger("phigate.serve")


async def serve_forever(settings: Settings, roles: frozenset[str], *,
                        delivery_command: Sequence[str] | None = None,
                        metrics_fd: int | None = None, wake_fd: int | None = None) -> None:
    """Run ``roles`` until SIGTERM or SIGINT.

    With ``delivery_command`` (how to run ``serve --role delivery``) and roles where
    :func:`~phigate.serve_child.runs_delivery_apart` holds, delivery runs in a child process
    this one supervises (see :mod:`phigate.serve_child`). ``metrics_fd`` is the child's end
    of the socketpair its parent asks for metrics on, ``wake_fd`` of the one it is told
    about new mail on.
    """
    loop = asyncio.get_running_loop()
    # accept() failing for want of descriptors is reported on every retry: log it rarely.
    RateLimitedLoopErrors().install(loop)
    child = (DeliveryChild(delivery_command) if delivery_command is not None
             and runs_delivery_apart(settings, roles) else None)
    own_roles = roles - {"delivery"} if child is not None else roles
    ensure_open_files(descriptors_needed(settings, own_roles))  # warns when it stays short
    running = await start_services(settings, own_roles)
    if child is not None:
        try:
            await child.start(running.health)
        except BaseException:
            await stop_services(running)
            raise
        running.runtime.store.new_mail.subscribe(child.waker.wake)
    if metrics_fd is not None:
        serve_metrics(socket.socket(fileno=metrics_fd), lambda: METRICS.render()[0])
    if wake_fd is not None:  # the parent's new mail wakes our claim loop
        listen_for_wakes(socket.socket(fileno=wake_fd), running.runtime.store.new_mail.notify)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Start-up is over: what it built lives as long as the process, out of collections.
    frozen = freeze_start_up_heap()
    log_event(log, "started", version=__version__, roles=sorted(own_roles),
              frozen_objects=frozen)
    # READY once this process's listeners are bound. The delivery child has been started,
    # not waited for: it binds nothing, and mail accepted meanwhile waits in the queue.
    sdnotify.notify_ready(f"serving {','.join(sorted(roles))}")
    watchdog = asyncio.create_task(_watchdog(running))
    await stop.wait()
    log_event(log, "stopping")
    sdnotify.notify_stopping()
    watchdog.cancel()
    # The child drains in the same grace period as our sessions; past it and the lease
    # release's time it is killed (KillMode=mixed: systemd signalled only us).
    grace = settings.delivery.shutdown_timeout_seconds
    child_stopped = (asyncio.ensure_future(child.stop(grace + LEASE_RELEASE_SECONDS))
                     if child is not None else None)
    await stop_services(running)
    if child_stopped is not None:
        await child_stopped
    log_event(log, "stopped")


async def _watchdog(running: RunningServices) -> None:
    interval = sdnotify.watchdog_interval()
    if interval is None:
        return
    while True:
        # Only pet the watchdog while the database answers: a wedged node gets restarted.
        if (await running.health.check()).checks.get("database", False):
            sdnotify.notify_watchdog()
        await asyncio.sleep(interval / 2)
