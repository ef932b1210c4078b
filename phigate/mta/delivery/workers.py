"""The scheduler's workers, per destination domain.

Claimed jobs wait in their domain's line. Each domain has at most its connection limit of
workers (a :class:`~phigate.mta.delivery.throttle.ConnectionSlot` each), and each worker
works through the domain's jobs on one reused connection, one message per rate token
(:mod:`phigate.mta.delivery.throttle`).

- A job whose lease is about to run out before the throttle lets it go is dropped from
  memory, never delivered on a lease we no longer hold: it is claimed again (here or on
  another node) once the lease has run out.
- A rate-limit reply pauses the domain: its waiting jobs are deferred to the end of the
  pause instead of being held in memory.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from phigate.clock import Clock
from phigate.config import DeliverySettings
from phigate.mta.delivery.jobs import Job
from phigate.mta.delivery.throttle import ConnectionSlot, Throttles
from phigate.observability.logs import log_event
from phigate.queue.store import QueueStore

#: The scheduler's events keep the logger name they had when all of this was scheduler.py.
log = logging.getLogger("phigate.mta.delivery.scheduler")

#: A job is not started when less than this share of its lease is left.
LEASE_SAFETY = 0.2

#: Delivers one job; ``started`` is when the rate allowed it (the attempt's time).
ProcessJob = Callable[[Job, datetime], Awaitable[None]]


@dataclass
class _Domain:
    jobs: collections.deque[Job] = field(default_factory=collections.deque)
    workers: int = 0
    #: Workers in the middle of a delivery: a job queued now waits for another worker.
    busy: int = 0

    def needs_worker(self) -> bool:
        """More jobs wait than workers are free to take them."""
        return len(self.jobs) > self.workers - self.busy


class WorkerPool:
    """The jobs waiting per domain and the workers delivering them."""

    def __init__(self, delivery: DeliverySettings, store: QueueStore, owner: str,
                 clock: Clock, throttles: Throttles, process: ProcessJob) -> None:
        self._delivery = delivery
        self._store = store
        self._owner = owner
        self._clock = clock
        self._throttles = throttles
        self._process = process
        self._domains: dict[str, _Domain] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.queued = 0  # recipients claimed and not yet started
        self.dropped_until: datetime | None = None  # latest lease of a dropped job
        #: Set when a worker ends: a connection slot is free for the next one.
        self.wake = asyncio.Event()

    def add(self, jobs: Iterable[Job]) -> None:
        for job in jobs:
            self._domains.setdefault(job.domain, _Domain()).jobs.append(job)
            self.queued += len(job.recipients)

    def forget_waiting(self) -> None:
        """Stopping: nothing new starts (the leases of the waiting jobs are released)."""
        self._domains.clear()
        self.queued = 0

    async def start_workers(self) -> None:
        now = self._clock.now()
        instant = now.timestamp()
        for name, domain in list(self._domains.items()):
            if domain.jobs and self._throttles.paused(name, instant):
                await self._defer_paused(name, domain)
            while (domain.needs_worker()
                   and len(self.tasks) < max(1, self._delivery.workers)):
                slot = self._throttles.try_connect(name, instant)
                if slot is None:
                    break
                domain.workers += 1
                task = asyncio.create_task(self._worker(name, domain, slot),
                                           name=f"delivery-worker-{slot.serial}")
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            if not domain.jobs and not domain.workers:
                del self._domains[name]

    def shortest_wait(self) -> float:
        """Seconds until a throttle may let one of the waiting jobs go."""
        instant = self._clock.now().timestamp()
        waits = [self._throttles.wait(name, instant) for name in self._domains]
        return max(0.01, min(waits, default=self._delivery.poll_interval_seconds))

    async def drain(self, timeout: float) -> None:
        """Let running deliveries finish within ``timeout``, cancel the rest."""
        if not self.tasks:
            return
        _, pending = await asyncio.wait(set(self.tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            # A delivery stuck outside the event loop (a thread) cannot be interrupted:
            # do not wait for it longer than a moment, its lease is released anyway.
            await asyncio.wait(pending, timeout=1.0)
            log_event(log, "delivery_cancelled_on_stop", jobs=len(pending),
                      level=logging.WARNING)

    async def _worker(self, name: str, domain: _Domain, slot: ConnectionSlot) -> None:
        try:
            while domain.jobs:
                if self._lease_too_short(domain.jobs[0]):
                    self._drop_stale(domain)
                    continue
                instant = self._clock.now().timestamp()
                if not self._throttles.try_send(name, instant):
                    if self._throttles.paused(name, instant):
                        break  # start_workers defers the rest
                    await self._clock.sleep(self._throttles.wait(name, instant))
                    continue
                started = self._clock.now()  # when the rate allowed it: the attempt's time
                job = domain.jobs.popleft()
                self.queued -= len(job.recipients)
                domain.busy += 1
                try:
                    await self._process(job, started)
                finally:
                    domain.busy -= 1
                if self._throttles.over_connection_limit(name, self._clock.now().timestamp()):
                    break
        finally:
            domain.workers -= 1
            self._throttles.release(slot)
            self.wake.set()  # a slot is free: the loop may start the next worker

    def _drop_stale(self, domain: _Domain) -> None:
        # Waited too long behind the throttle: drop it before it costs a token; its lease
        # runs out and it is claimed again (here or elsewhere).
        stale = domain.jobs.popleft()
        self.queued -= len(stale.recipients)
        self.dropped_until = max(self.dropped_until or stale.lease_until, stale.lease_until)
        log_event(log, "delivery_lease_lost", level=logging.DEBUG, id=stale.message_id)

    def _lease_too_short(self, job: Job) -> bool:
        left = (job.lease_until - self._clock.now()).total_seconds()
        return left < LEASE_SAFETY * self._delivery.lease_seconds

    async def _defer_paused(self, name: str, domain: _Domain) -> None:
        """The destination asked us to slow down: put its waiting jobs back in the queue."""
        instant = self._clock.now().timestamp()
        resume = self._clock.now() + timedelta(seconds=self._throttles.wait(name, instant))
        jobs = list(domain.jobs)
        domain.jobs.clear()
        for job in jobs:
            self.queued -= len(job.recipients)
            for recipient in job.recipients:
                await asyncio.to_thread(
                    self._store.defer, recipient.recipient_id, self._owner,
                    next_attempt_at=resume, code=451,
                    text="4.7.0 destination asked us to slow down; waiting")
        log_event(log, "delivery_destination_paused", jobs=len(jobs))
