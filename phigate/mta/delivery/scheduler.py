"""The delivery scheduler (Postfix's qmgr in spirit): claim, deliver, dispose.

Loop shape (Mailman's runner): ``run`` → one iteration (:meth:`_run_once`: claim what is
due, start workers) → process one job (:meth:`_process`: one message to the recipients of
one domain) → dispose (:class:`~phigate.mta.delivery.disposal.Disposer`: record the
attempt, then delivered / deferred / bounced / expired).

The parts, each in a module of its own:

- :mod:`~phigate.mta.delivery.jobs`: what a claim becomes, one job per message and domain.
- :mod:`~phigate.mta.delivery.workers`: the jobs waiting per destination domain and the
  workers delivering them, within the throttles; stale and paused jobs.
- :mod:`~phigate.mta.delivery.prepare`: read, decorate and sign one message, time-bound.
- :mod:`~phigate.mta.delivery.disposal`: record the attempt and move the recipients on.

What the scheduler itself does:

- Claims are leases (``[delivery] lease_seconds``); several nodes share one PostgreSQL
  queue. A node that dies lets its leases run out and the others take over.
- An unexpected exception while processing a job counts against the message
  (``note_processing_error``: its leases are released, and at the third time it is parked
  as ``corrupt``); it never loses the message and never stops the loop.
- Graceful stop: stop claiming, let running deliveries finish within
  ``shutdown_timeout_seconds``, cancel the rest, release every lease we hold.

Everything that reads the time goes through the injected :class:`Clock`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
from datetime import datetime, timedelta

from phigate.clock import Clock, SystemClock
from phigate.config import Settings
from phigate.mta.delivery.claim_tokens import ClaimTokens
from phigate.mta.delivery.client import OutboundMessage, SmtpTransport, Transport
from phigate.mta.delivery.decorate import token_signer
from phigate.mta.delivery.disposal import Disposer
from phigate.mta.delivery.dkim import MessageSigner
from phigate.mta.delivery.dkim_keyring import DkimKeyring
from phigate.mta.delivery.incident_watch import IncidentWatch
from phigate.mta.delivery.jobs import Job, group_jobs
from phigate.mta.delivery.poison import PoisonMessage
from phigate.mta.delivery.prepare import Preparer, run_bounded
from phigate.mta.delivery.retry import RetrySchedule
from phigate.mta.delivery.secure import tls_optional
from phigate.mta.delivery.security import DeliverySecurity, build_security
from phigate.mta.delivery.throttle import Throttles
from phigate.mta.delivery.unprocessable import Unprocessables
from phigate.mta.delivery.workers import WorkerPool
from phigate.observability.logs import log_event
from phigate.pickup.switch import PickupSwitch
from phigate.policy.tokens import TokenSigner
from phigate.queue.store import ClaimedRecipient, QueueStore

log = logging.getLogger(__name__)

RECLAIM_INTERVAL_SECONDS = 60.0
#: After a "new mail" signal the claim waits this long, so that the messages accepted
#: meanwhile share it: a claim's fixed cost (~1.3 ms of CPU, SQLite) per handful of
#: messages rather than per message, for at most this much more delivery latency.
NEW_MAIL_GATHER_SECONDS = 0.05


class DeliveryScheduler:
    def __init__(self, settings: Settings, store: QueueStore, *, clock: Clock | None = None,
                 transport: Transport | None = None, signer: MessageSigner | None = None,
                 owner: str | None = None, rng: random.Random | None = None,
                 tokens: TokenSigner | None = None,
                 security: DeliverySecurity | None = None,
                 incidents: IncidentWatch | None = None,
                 smarthost_password: str = "") -> None:
        self._delivery = settings.delivery
        self._store = store
        self._incidents = incidents  # bounce incidents: marketing holds, opened and ended
        self._clock: Clock = clock or SystemClock()
        #: MTA-STS, DANE and TLS-RPT state (``security.counter`` feeds the reporter).
        self.security = security or build_security(settings, store, now=self._clock.now)
        self._transport = transport or SmtpTransport(
            settings.delivery, local_hostname=settings.server.hostname,
            smarthost_password=smarthost_password,  # read by serve, the composition root
            security=self.security)
        # The keys of a DKIM rollover (`phigate dkim activate`) replace the configured one,
        # also while we run.
        if signer is None:
            signer = DkimKeyring.from_settings(
                settings.dkim, settings.server.domain, getattr(store, "engine", None))
        # With a token key every recipient gets its own VERP return path (and, for
        # marketing, its own List-Unsubscribe): one transaction per recipient then, over the
        # same reused connection, so that a bounce or an unsubscribe names one recipient.
        self._tokens = tokens if tokens is not None else _default_tokens(settings, store)
        self._prepare = Preparer(settings, store, tokens=self._tokens, signer=signer)
        # ... and their tokens are recorded in the claim's transaction, not one per message.
        self._claim_tokens = ClaimTokens.maybe(self._tokens, store)
        # NODE:PID:RANDOM: the node name ([server] node_name) is stable across restarts,
        # so a restarted node finds the leases its killed predecessor held (serve).
        self.owner = owner or f"{settings.server.node()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._unprocessable = Unprocessables(settings, store, self.owner, self._clock.now)
        # Secure pickup (issue 18): PHI without an acceptable TLS route waits on our page.
        self._pickup = PickupSwitch.maybe(settings, store)
        self._disposer = Disposer(
            settings, store, self.owner, clock=self._clock,
            retry=RetrySchedule(base_seconds=self._delivery.retry_base_seconds,
                                cap_seconds=self._delivery.retry_max_seconds,
                                lifetime_seconds=self._delivery.max_lifetime_seconds),
            rng=rng or random.Random(),  # noqa: S311 - retry jitter, not security
            pickup=self._pickup, incidents=incidents)
        self._throttles = Throttles(self._delivery)
        self._pool = WorkerPool(self._delivery, store, self.owner, self._clock,
                                self._throttles, self._process)
        self._last_reclaim: datetime | None = None
        self._gathering: asyncio.TimerHandle | None = None

    @property
    def throttles(self) -> Throttles:
        return self._throttles

    def new_mail(self) -> None:
        """Mail was queued (:mod:`phigate.queue.new_mail`): claim it within
        :data:`NEW_MAIL_GATHER_SECONDS` instead of at the next poll. Call on the loop."""
        if self._gathering is None:
            self._gathering = asyncio.get_running_loop().call_later(
                NEW_MAIL_GATHER_SECONDS, self._gathered)

    def _gathered(self) -> None:
        self._gathering = None
        self._pool.wake.set()

    # -- the loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, then stop gracefully (see the module doc)."""
        log_event(log, "delivery_started", owner=self.owner)
        try:
            while not stop.is_set():
                claimed = await self._run_once()
                if claimed:
                    await asyncio.sleep(0)  # let the workers start
                    continue
                await self._idle(stop)
        finally:
            if self._gathering is not None:
                self._gathering.cancel()
            await self._shutdown()

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for a poll interval, a worker that finished, or ``stop``."""
        wake = self._pool.wake
        waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())}
        try:
            await asyncio.wait(waiters, timeout=self._delivery.poll_interval_seconds,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
            wake.clear()

    async def run_until_empty(self) -> None:
        """Deliver until nothing is due and nothing is running (tests, ``--once``)."""
        pool = self._pool
        while True:
            claimed = await self._run_once()
            if pool.tasks:
                await asyncio.wait(pool.tasks, return_when=asyncio.FIRST_COMPLETED)
                continue
            if not claimed and not pool.queued:
                if pool.dropped_until is not None and pool.dropped_until >= self._clock.now():
                    # Dropped stale jobs come back when their leases run out.
                    wait = (pool.dropped_until - self._clock.now()).total_seconds()
                    pool.dropped_until = None
                    await self._clock.sleep(wait + 0.001)
                    continue
                break
            if not claimed:
                # Jobs wait for a connection slot that no running worker will free
                # (the global cap is shared with nobody here): wait for a token.
                await self._clock.sleep(pool.shortest_wait())
        await self._transport.aclose()

    async def aclose(self) -> None:
        await self._shutdown()

    async def _run_once(self) -> int:
        now = self._clock.now()
        await self._maybe_reclaim(now)
        room = self._delivery.claim_batch_size - self._pool.queued
        claimed: list[ClaimedRecipient] = []
        if room > 0:
            claimed = await asyncio.to_thread(self._claim_due, now, room)
        lease_until = now + timedelta(seconds=self._delivery.lease_seconds)
        self._pool.add(group_jobs(claimed, lease_until, per_recipient=self._tokens is not None))
        await self._pool.start_workers()
        return len(claimed)

    def _claim_due(self, now: datetime, limit: int) -> list[ClaimedRecipient]:
        lease = self._delivery.lease_seconds
        if self._claim_tokens is not None:
            return self._claim_tokens.claim_due(self._store, self.owner, now=now, limit=limit,
                                                lease_seconds=lease)
        return self._store.claim_due(self.owner, now=now, limit=limit, lease_seconds=lease)

    async def _maybe_reclaim(self, now: datetime) -> None:
        # Claims skip expired leases anyway; clearing them keeps the admin views honest.
        if (self._last_reclaim is None
                or (now - self._last_reclaim).total_seconds() >= RECLAIM_INTERVAL_SECONDS):
            self._last_reclaim = now
            await asyncio.to_thread(self._store.reclaim_expired_leases, now)
            if self._pickup is not None:
                await asyncio.to_thread(self._pickup.pickups.expire_due, now)

    # -- one job --------------------------------------------------------------------------

    async def _process(self, job: Job, started: datetime) -> None:
        try:
            incidents = self._incidents
            if incidents is not None and incidents.may_hold(job.recipients) \
                    and await asyncio.to_thread(incidents.hold, self._store, self.owner,
                                                job.recipients, job.domain,
                                                now=self._clock.now()):
                return  # marketing to a domain under an incident: deferred, not tried
            # Reading the body, decorating and signing: one trip to a thread, not three.
            original, sender, content = await run_bounded(  # a daemon thread, time-bound
                lambda: self._prepare(job), timeout=self._delivery.prepare_timeout_seconds)
            first = job.first
            result = await self._transport.deliver(OutboundMessage(
                sender=sender, recipients=[r.address for r in job.recipients],
                domain=job.domain, content=content, phi=first.phi, message_id=job.message_id,
                require_tls=first.require_tls, tls_optional=tls_optional(original)))
            if result.rate_limited:
                self._throttles.slow_down(job.domain, self._clock.now().timestamp())
                log_event(log, "delivery_rate_limited", id=job.message_id)
            await asyncio.to_thread(self._disposer.dispose, job, result, original, started)
        except asyncio.CancelledError:
            raise  # shutdown: our leases are released, the job is retried
        except PoisonMessage as poison:  # never signed: bounced with a DSN at once
            await asyncio.to_thread(self._unprocessable.bounce, job.message_id,
                                    job.recipients, poison.reason)
        except Exception as error:
            # Our bug or bad data: counted against the message, parked as corrupt (with a
            # DSN) the third time; its leases are released so it is retried meanwhile.
            await asyncio.to_thread(self._unprocessable.note_error, job.message_id,
                                    job.recipients, error)

    # -- stopping -------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        """Let running deliveries finish within ``shutdown_timeout_seconds``, cancel the
        rest, and give back every lease we hold: shielded, so that it runs and is logged
        even when whoever stops us gives up waiting (cancels us) first."""
        self._pool.forget_waiting()  # nothing new starts; their leases are released below
        try:
            await self._pool.drain(self._delivery.shutdown_timeout_seconds)
        finally:
            release = asyncio.ensure_future(
                asyncio.to_thread(self._store.release_leases, self.owner))
            try:
                released = await asyncio.shield(release)
            except asyncio.CancelledError:
                released = await release  # the release still finishes, then we stop
                log_event(log, "delivery_stopped", owner=self.owner, released=released,
                          cancelled=True, level=logging.WARNING)
                raise
            log_event(log, "delivery_stopped", owner=self.owner, released=released)
            await self._transport.aclose()


def _default_tokens(settings: Settings, store: QueueStore) -> TokenSigner | None:
    """The token signer over the store's own database (stores without one: no tokens)."""
    engine = getattr(store, "engine", None)
    return None if engine is None else token_signer(settings, engine)
