"""``serve``'s delivery child process: started, watched, restarted and stopped by ``serve``.

Submission (TLS, AUTH, DATA, the commit) and delivery (claims, DKIM, the SMTP client) in one
interpreter share one GIL, so one core: measured on two cores, scanning off, that capped the
relay at a quarter of Postfix's rate, and two processes on the same queue took it past half
(issue 16). Postfix is several processes under ``master`` too. So when ``serve``'s roles
include delivery beside smtp or http (the default ``all``), delivery runs as
``phigate serve --role delivery`` in a child process, and the parent supervises it as
``master`` does its daemons:

- lifetime: the child ends with the parent even after a ``kill -9`` of it
  (:func:`phigate.lifeline.exit_with_parent`, given the parent's pid on its command line);
  it runs in a session of its own, so a terminal's Ctrl-C reaches the parent only, which
  stops the child itself;
- stop: SIGTERM to the child as the parent's own shutdown begins, so both drain in the one
  grace period; a child still there after it (and the lease release's time) is killed,
  with a log line (its leases are taken back at the next start);
- crash: an unexpected exit is logged (status or signal, no message data) and counted
  (``phigate_delivery_process_restarts_total``), ``/healthz`` says ``delivery: false``, and
  the child is started again after a back-off (1 s doubling to 60 s, reset once a child has
  run for a minute);
- systemd: only the parent talks to it (``NOTIFY_SOCKET`` and ``WATCHDOG_*`` are not passed
  on; the units say ``NotifyAccess=main``);
- metrics: the parent's ``/metrics`` asks the child for its exposition over a socketpair
  (:mod:`phigate.observability.metrics_link`) and merges it with its own
  (:mod:`phigate.observability.merge`);
- new mail: each commit that queues mail in the parent wakes the child's claim loop over a
  second socketpair (:mod:`phigate.mta.delivery.wake_link`), so accepted mail goes out at
  once rather than at the child's next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from phigate.config import Settings
from phigate.mta.delivery.wake_link import WakeSender
from phigate.observability.health import HealthState
from phigate.observability.logs import log_event
from phigate.observability.metrics import METRICS, Metrics
from phigate.observability.metrics_link import MetricsLink

log = logging.getLogger("phigate.serve")

#: The environment only the parent may use: systemd's notification socket and watchdog.
PARENT_ONLY_ENVIRONMENT = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
#: Options ``serve`` gives its delivery child (hidden from ``--help``).
SUPERVISED_BY_OPTION = "--supervised-by"
METRICS_FD_OPTION = "--metrics-fd"
WAKE_FD_OPTION = "--wake-fd"
#: Where Linux's autogroup scheduling keeps a session's nice value (see lower_priority).
AUTOGROUP = Path("/proc/self/autogroup")


def lower_priority(increment: int) -> int:
    """Lower this process's CPU priority by ``increment`` nice levels (``[delivery]
    process_nice``); returns its niceness. Called by the delivery child before it starts
    any thread, so that every thread of it runs at that niceness.

    Why: on a machine whose cores are saturated (a burst of submissions, scanning on),
    submission's sessions, its scanner workers and delivery all want the CPU; a client is
    waiting for each 250 while delivery's work can wait a little. With the child at a
    lower priority the scheduler gives acceptance the cores first, and delivery the rest,
    and all of them once the burst is over. An unprivileged process may lower its own
    priority, never raise it back.

    The child runs in a session of its own, and with Linux's autogroup scheduling
    (``kernel.sched_autogroup_enabled``, on by default in many kernels) the scheduler
    shares the CPU between sessions first and weighs a thread's nice value only within
    its session: measured, the child at nice 10 still took ~0.8 of a core from the scanner
    workers while it delivered. So the session's nice value is set too. Outside the root
    cgroup (a systemd service) autogroups do not apply, and the write changes nothing.
    """
    niceness = os.nice(max(0, increment))
    _lower_own_autogroup(niceness)
    return niceness


def _lower_own_autogroup(niceness: int) -> None:
    try:
        if os.getsid(0) == os.getsid(os.getppid()):
            return  # the parent's session, so the parent's autogroup: leave it alone
        AUTOGROUP.write_text(f"{niceness}\n")
    except OSError:
        pass  # no autogroups in this kernel, or the parent is gone (the lifeline acts)


def runs_delivery_apart(settings: Settings, roles: frozenset[str]) -> bool:
    """Whether ``serve`` with ``roles`` starts delivery in a child process."""
    return (settings.delivery.separate_process and "delivery" in roles
            and bool(roles & {"smtp", "http"}))


@dataclass(frozen=True)
class Backoff:
    """How long to wait before starting a child that ended unexpectedly."""

    first_seconds: float = 1.0
    max_seconds: float = 60.0
    #: A child that ran this long was fine: the next wait starts from ``first`` again.
    reset_after_seconds: float = 60.0


class DeliveryChild:
    """One supervised child process running ``command`` (``serve --role delivery``)."""

    def __init__(self, command: Sequence[str], *, backoff: Backoff = Backoff(),
                 metrics: Metrics = METRICS, name: str = "delivery") -> None:
        self._command = list(command)
        self._backoff = backoff
        self._metrics = metrics
        self.name = name
        self.link = MetricsLink()
        #: Wakes the child's claim loop when new mail is queued (``wake`` is thread-safe).
        self.waker = WakeSender()
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        """True while the child process runs (the ``/healthz`` check)."""
        process = self._process
        return process is not None and process.returncode is None

    async def start(self, health: HealthState | None = None) -> None:
        """Start the child and its supervision; from now on scrapes include its metrics."""
        if health is not None:
            health.watch_process(self.name, self.running)
        self._metrics.register_child(self.running, self.link.fetch)
        try:
            process = await self._spawn()
        except BaseException:
            self._metrics.register_child(None, None)
            raise
        self._task = asyncio.create_task(self._supervise(process), name=f"{self.name}-child")

    async def stop(self, budget: float) -> None:
        """SIGTERM the child and wait up to ``budget`` seconds, then SIGKILL it."""
        self._stopping.set()
        self._signal(signal.SIGTERM)
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), budget)
            except TimeoutError:
                log_event(log, "delivery_process_killed", level=logging.WARNING,
                          pid=self.pid, after_seconds=round(budget, 1))
                self._signal(signal.SIGKILL)
                await self._task
        self._metrics.register_child(None, None)
        self.link.attach(None)
        self.waker.attach(None)

    def _signal(self, signum: signal.Signals) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)

    async def _spawn(self) -> asyncio.subprocess.Process:
        """Start one child with fresh socketpairs (metrics, new-mail wakes)."""
        ours, theirs = socket.socketpair()
        wake_ours, wake_theirs = socket.socketpair()
        environment = {key: value for key, value in os.environ.items()
                       if key not in PARENT_ONLY_ENVIRONMENT}
        try:
            process = await asyncio.create_subprocess_exec(
                *self._command, SUPERVISED_BY_OPTION, str(os.getpid()),
                METRICS_FD_OPTION, str(theirs.fileno()),
                WAKE_FD_OPTION, str(wake_theirs.fileno()),
                env=environment, pass_fds=(theirs.fileno(), wake_theirs.fileno()),
                stdin=subprocess.DEVNULL, start_new_session=True)
        except BaseException:
            ours.close()
            wake_ours.close()
            raise
        finally:
            theirs.close()
            wake_theirs.close()
        self._process = process
        self.link.attach(ours)
        self.waker.attach(wake_ours)
        log_event(log, "delivery_process_started", pid=process.pid)
        return process

    async def _supervise(self, process: asyncio.subprocess.Process) -> None:
        started = time.monotonic()
        wait = self._backoff.first_seconds
        while True:
            if self._stopping.is_set():
                self._signal(signal.SIGTERM)  # stop() came while this child was starting
            status = await process.wait()
            if self._stopping.is_set():
                log_event(log, "delivery_process_stopped", pid=process.pid, status=status)
                return
            if time.monotonic() - started >= self._backoff.reset_after_seconds:
                wait = self._backoff.first_seconds
            log_event(log, "delivery_process_exited", level=logging.ERROR,
                      pid=process.pid, **_exit_fields(status), restart_in=wait)
            restarted = await self._restart_after(wait)
            if restarted is None:
                return
            process, started = restarted, time.monotonic()
            self.restarts += 1
            self._metrics.record_delivery_process_restart()
            wait = min(wait * 2, self._backoff.max_seconds)

    async def _restart_after(self, wait: float) -> asyncio.subprocess.Process | None:
        """Start the child again after ``wait`` seconds, retrying a failed start; None when
        told to stop meanwhile."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait)
            if self._stopping.is_set():
                return None
            try:
                return await self._spawn()
            except Exception as error:
                # Out of processes or descriptors (OSError), or anything else: supervision
                # must not end silently, so log it and try again after the wait.
                log_event(log, "delivery_process_start_failed", level=logging.ERROR,
                          error=type(error).__name__, errno=getattr(error, "errno", None))
                wait = min(wait * 2, self._backoff.max_seconds)


def _exit_fields(status: int) -> dict[str, object]:
    if status < 0:
        try:
            return {"signal": signal.Signals(-status).name}
        except ValueError:
            return {"signal": -status}
    return {"status": status}
