"""The delivery scheduler (Postfix's qmgr in spirit): claim, deliver, dispose.

Loop shape (Mailman's runner): ``run`` → one iteration (:meth:`_run_once`: claim what is
due, start workers) → process one job (:meth:`_process`: one message to the recipients of
one domain) → dispose (:meth:`_dispose`: record the attempt, then delivered / deferred /
bounced / expired).

- Claims are leases (``[delivery] lease_seconds``); several nodes share one PostgreSQL
  queue. A node that dies lets its leases run out and the others take over. Jobs whose
  lease is about to run out before a throttle lets them go are dropped from memory, never
  delivered on a lease we no longer hold.
- Jobs are grouped per destination domain; each domain has at most its connection limit of
  workers, each working through the domain's jobs on one reused connection, one message
  per rate token (:mod:`phigate.mta.delivery.throttle`).
- A rate-limit reply pauses the domain: its waiting jobs are deferred to the end of the
  pause instead of being held in memory.
- An unexpected exception while processing a job counts against the message
  (``note_processing_error``: its leases are released, and at the third time it is parked
  as ``corrupt``); it never loses the message and never stops the loop.
- Graceful stop: stop claiming, let running deliveries finish within
  ``shutdown_timeout_seconds``, cancel the rest, release every lease we hold.

Everything that reads the time goes through the injected :class:`Clock`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from phigate.clock import Clock, SystemClock
from phigate.config import Settings
from phigate.mta.delivery import notices
from phigate.mta.delivery.client import OutboundMessage, SmtpTransport, Transport
from phigate.mta.delivery.decorate import decorate, token_signer
from phigate.mta.delivery.disposal import attempt_outcome, failure_status
from phigate.mta.delivery.dkim import MessageSigner, strip_internal_headers
from phigate.mta.delivery.dkim_keyring import DkimKeyring
from phigate.mta.delivery.dsn import FailedRecipient, build_dsn
from phigate.mta.delivery.incident_watch import IncidentWatch
from phigate.mta.delivery.outcomes import AttemptResult, RecipientOutcome
from phigate.mta.delivery.poison import PoisonMessage, check_header_block
from phigate.mta.delivery.prepare import run_bounded
from phigate.mta.delivery.reports import queue_report
from phigate.mta.delivery.retry import RetrySchedule
from phigate.mta.delivery.secure import tls_optional
from phigate.mta.delivery.security import DeliverySecurity, build_security
from phigate.mta.delivery.throttle import ConnectionSlot, Throttles
from phigate.mta.delivery.unprocessable import Unprocessables
from phigate.observability.labels import FinalOutcomeLabel, TlsLevelLabel
from phigate.observability.logs import log_event
from phigate.observability.metrics import METRICS
from phigate.pickup.switch import PickupSwitch
from phigate.policy.tokens import TokenSigner
from phigate.queue.models import DeferReason, RecipientState
from phigate.queue.store import (
    ClaimedRecipient,
    QueueStore,
)
from phigate.queue.transitions import AttemptRecord, Disposition

log = logging.getLogger(__name__)

#: A job is not started when less than this share of its lease is left.
LEASE_SAFETY = 0.2
RECLAIM_INTERVAL_SECONDS = 60.0


@dataclass
class Job:
    """One message for the claimed recipients of one domain."""

    message_id: str
    domain: str
    recipients: list[ClaimedRecipient]
    lease_until: datetime

    @property
    def first(self) -> ClaimedRecipient:
        return self.recipients[0]


@dataclass
class _Domain:
    jobs: collections.deque[Job] = field(default_factory=collections.deque)
    workers: int = 0
    #: Workers in the middle of a delivery: a job queued now waits for another worker.
    busy: int = 0

    def needs_worker(self) -> bool:
        """More jobs wait than workers are free to take them."""
        return len(self.jobs) > self.workers - self.busy


class DeliveryScheduler:
    def __init__(self, settings: Settings, store: QueueStore, *, clock: Clock | None = None,
                 transport: Transport | None = None, signer: MessageSigner | None = None,
                 owner: str | None = None, rng: random.Random | None = None,
                 tokens: TokenSigner | None = None,
                 security: DeliverySecurity | None = None,
                 incidents: IncidentWatch | None = None,
                 smarthost_password: str = "") -> None:
        self._settings = settings
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
        self._signer = signer if signer is not None else DkimKeyring.from_settings(
            settings.dkim, settings.server.domain, getattr(store, "engine", None))
        # With a token key every recipient gets its own VERP return path (and, for
        # marketing, its own List-Unsubscribe): one transaction per recipient then, over the
        # same reused connection, so that a bounce or an unsubscribe names one recipient.
        self._tokens = tokens if tokens is not None else _default_tokens(settings, store)
        # Secure pickup (issue 18): PHI without an acceptable TLS route waits on our page.
        self._pickup = PickupSwitch.maybe(settings, store)
        # NODE:PID:RANDOM: the node name ([server] node_name) is stable across restarts,
        # so a restarted node finds the leases its killed predecessor held (serve).
        self.owner = owner or f"{settings.server.node()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._unprocessable = Unprocessables(settings, store, self.owner, self._clock.now)
        self._rng = rng or random.Random()  # noqa: S311 - retry jitter, not security
        self._retry = RetrySchedule(
            base_seconds=self._delivery.retry_base_seconds,
            cap_seconds=self._delivery.retry_max_seconds,
            lifetime_seconds=self._delivery.max_lifetime_seconds)
        self._throttles = Throttles(self._delivery)
        self._domains: dict[str, _Domain] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._queued = 0  # recipients claimed and not yet started
        self._last_reclaim: datetime | None = None
        self._wake = asyncio.Event()
        self._dropped_until: datetime | None = None  # latest lease of a dropped job

    @property
    def throttles(self) -> Throttles:
        return self._throttles

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
            await self._shutdown()

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for a poll interval, a worker that finished, or ``stop``."""
        waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())}
        try:
            await asyncio.wait(waiters, timeout=self._delivery.poll_interval_seconds,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
            self._wake.clear()

    async def run_until_empty(self) -> None:
        """Deliver until nothing is due and nothing is running (tests, ``--once``)."""
        while True:
            claimed = await self._run_once()
            if self._tasks:
                await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                continue
            if not claimed and not self._queued:
                if self._dropped_until is not None and self._dropped_until >= self._clock.now():
                    # Dropped stale jobs come back when their leases run out.
                    wait = (self._dropped_until - self._clock.now()).total_seconds()
                    self._dropped_until = None
                    await self._clock.sleep(wait + 0.001)
                    continue
                break
            if not claimed:
                # Jobs wait for a connection slot that no running worker will free
                # (the global cap is shared with nobody here): wait for a token.
                await self._clock.sleep(self._shortest_wait())
        await self._transport.aclose()

    async def aclose(self) -> None:
        await self._shutdown()

    async def _run_once(self) -> int:
        now = self._clock.now()
        await self._maybe_reclaim(now)
        room = self._delivery.claim_batch_size - self._queued
        claimed: list[ClaimedRecipient] = []
        if room > 0:
            claimed = await asyncio.to_thread(
                self._store.claim_due, self.owner, now=now, limit=room,
                lease_seconds=self._delivery.lease_seconds)
        lease_until = now + timedelta(seconds=self._delivery.lease_seconds)
        for job in _group(claimed, lease_until, per_recipient=self._tokens is not None):
            self._domains.setdefault(job.domain, _Domain()).jobs.append(job)
            self._queued += len(job.recipients)
        await self._start_workers()
        return len(claimed)

    async def _maybe_reclaim(self, now: datetime) -> None:
        # Claims skip expired leases anyway; clearing them keeps the admin views honest.
        if (self._last_reclaim is None
                or (now - self._last_reclaim).total_seconds() >= RECLAIM_INTERVAL_SECONDS):
            self._last_reclaim = now
            await asyncio.to_thread(self._store.reclaim_expired_leases, now)
            if self._pickup is not None:
                await asyncio.to_thread(self._pickup.pickups.expire_due, now)

    async def _start_workers(self) -> None:
        now = self._clock.now()
        instant = now.timestamp()
        for name, domain in list(self._domains.items()):
            if domain.jobs and self._throttles.paused(name, instant):
                await self._defer_paused(name, domain)
            while (domain.needs_worker()
                   and len(self._tasks) < max(1, self._delivery.workers)):
                slot = self._throttles.try_connect(name, instant)
                if slot is None:
                    break
                domain.workers += 1
                task = asyncio.create_task(self._worker(name, domain, slot),
                                           name=f"delivery-worker-{slot.serial}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if not domain.jobs and not domain.workers:
                del self._domains[name]

    def _shortest_wait(self) -> float:
        instant = self._clock.now().timestamp()
        waits = [self._throttles.wait(name, instant) for name in self._domains]
        return max(0.01, min(waits, default=self._delivery.poll_interval_seconds))

    async def _worker(self, name: str, domain: _Domain, slot: ConnectionSlot) -> None:
        try:
            while domain.jobs:
                if self._lease_too_short(domain.jobs[0]):
                    # Waited too long behind the throttle: drop it before it costs a
                    # token; its lease runs out and it is claimed again (here or elsewhere).
                    stale = domain.jobs.popleft()
                    self._queued -= len(stale.recipients)
                    self._dropped_until = max(self._dropped_until or stale.lease_until,
                                              stale.lease_until)
                    log_event(log, "delivery_lease_lost", level=logging.DEBUG,
                              id=stale.message_id)
                    continue
                instant = self._clock.now().timestamp()
                if not self._throttles.try_send(name, instant):
                    if self._throttles.paused(name, instant):
                        break  # _start_workers defers the rest
                    await self._clock.sleep(self._throttles.wait(name, instant))
                    continue
                started = self._clock.now()  # when the rate allowed it: the attempt's time
                job = domain.jobs.popleft()
                self._queued -= len(job.recipients)
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
            self._wake.set()  # a slot is free: the loop may start the next worker

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
            self._queued -= len(job.recipients)
            for recipient in job.recipients:
                await asyncio.to_thread(
                    self._store.defer, recipient.recipient_id, self.owner,
                    next_attempt_at=resume, code=451,
                    text="4.7.0 destination asked us to slow down; waiting")
        log_event(log, "delivery_destination_paused", jobs=len(jobs))

    # -- one job --------------------------------------------------------------------------

    async def _process(self, job: Job, started: datetime) -> None:
        try:
            if self._incidents is not None and await asyncio.to_thread(
                    self._incidents.hold, self._store, self.owner, job.recipients,
                    job.domain, now=self._clock.now()):
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
            await asyncio.to_thread(self._dispose, job, result, original, started)
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

    def _prepare(self, job: Job) -> tuple[bytes, str, bytes]:
        """(stored body, envelope sender, bytes to send) for ``job`` (runs in a thread: the
        body read waits for the database, and RSA signing takes CPU)."""
        original = self._store.read_body(job.message_id)
        if (poison := check_header_block(original)) is not None:
            raise PoisonMessage(poison)  # dkimpy would be quadratic on it, or fail
        first = job.first
        sender, content = first.sender, original
        if self._tokens is not None:
            decorated = decorate(
                original, recipient=first.address, sender=first.sender,
                message_class=first.message_class, campaign_id=first.campaign_id,
                settings=self._settings, signer=self._tokens, phi=first.phi)
            sender, content = decorated.mail_from, decorated.body
        return original, sender, self._outbound_bytes(content)

    def _outbound_bytes(self, original: bytes) -> bytes:
        if self._signer is not None:
            return self._signer.sign(original)  # also strips X-Phigate-* headers
        return strip_internal_headers(original)

    def _dispose(self, job: Job, result: AttemptResult, original: bytes,
                 started: datetime) -> None:
        """Record the attempt and move every recipient on (runs in a thread).

        Attempts, deliveries and deferrals of the job are written in one transaction (one
        fsync); failures are finished after their DSN is queued (see below).
        """
        now = self._clock.now()
        failed: list[tuple[ClaimedRecipient, RecipientOutcome, RecipientState]] = []
        tls_label: TlsLevelLabel = ("verified" if result.tls.cert_verified
                               else "encrypted" if result.tls.encrypted else "none")
        outcomes = [self._phi_tls_final(claimed, outcome, job.domain, now)
                    for claimed, outcome in zip(job.recipients, result.outcomes, strict=True)]
        to_pickup = self._wants_pickup(job, result, now)
        dispositions, pending_failures = self._dispositions(job, result, outcomes, started,
                                                            now, to_pickup)
        recorded = self._store.record_outcomes(self.owner, dispositions, now=now)
        delayed: list[tuple[ClaimedRecipient, RecipientOutcome]] = []
        for claimed, outcome, failure, ok in zip(job.recipients, outcomes,
                                                 pending_failures, recorded, strict=True):
            if not ok:
                continue  # the lease ran out and another node owns the recipient now
            METRICS.record_delivery_attempt(attempt_outcome(outcome), tls=tls_label)
            if outcome.delivered:
                self._count_final(claimed, "delivered", now)
            elif claimed.recipient_id in to_pickup and self._pickup is not None:
                self._pickup.switch(claimed, self.owner, now)
                log_event(log, "delivery_switched_to_pickup", id=job.message_id)
            elif failure is not None:
                failed.append((claimed, outcome, failure))
            else:
                METRICS.record_recipient("deferred", claimed.message_class)
                if notices.delay_due(self._delivery, notified=claimed.delay_notified,
                                     created_at=claimed.created_at, now=now):
                    delayed.append((claimed, outcome))
        if delayed:
            self._notify_delay(job, result, original, delayed, now)
        if failed:
            # The bounce is queued before the recipients are marked: a crash in between
            # sends a second bounce, never none.
            self._bounce(job, result, original, failed, now)
            for claimed, outcome, state in failed:
                self._store.mark_failed(claimed.recipient_id, self.owner, state=state,
                                        code=outcome.code, text=outcome.stored_text,
                                        now=now)
                self._count_final(claimed, "bounced" if state is RecipientState.BOUNCED
                                  else "expired", now)
        if self._incidents is not None:
            self._incidents.observe(job.domain, outcomes, now=now)
        log_event(log, "delivery_attempt", id=job.message_id, rcpts=len(job.recipients),
                  delivered=sum(o.delivered for o in result.outcomes), failed=len(failed),
                  tls=tls_label, ms=round(result.duration * 1000))

    def _dispositions(self, job: Job, result: AttemptResult,
                      outcomes: Sequence[RecipientOutcome], started: datetime, now: datetime,
                      to_pickup: frozenset[int] = frozenset(),
                      ) -> tuple[list[Disposition], list[RecipientState | None]]:
        """Each recipient's attempt record and what follows (delivered, deferred until, or
        the final failure state that is applied after the DSN is queued)."""
        dispositions: list[Disposition] = []
        pending_failures: list[RecipientState | None] = []
        for claimed, outcome, original_outcome in zip(job.recipients, outcomes,
                                                      result.outcomes, strict=True):
            attempt = AttemptRecord(
                started_at=started, host=result.host, code=outcome.code,
                text=outcome.stored_text,
                permanent=outcome.permanent, tls_version=result.tls.version,
                tls_cipher=result.tls.cipher, cert_verified=result.tls.cert_verified,
                duration_seconds=result.duration, tls_policy=result.tls_policy)
            next_at = None
            failure: RecipientState | None = None
            if claimed.recipient_id in to_pickup:
                pass  # keeps its lease: switched to pickup after the attempt is recorded
            elif outcome is not original_outcome:
                failure = RecipientState.EXPIRED  # PHI's wait for a TLS route is over
            elif outcome.permanent and not outcome.delivered:
                failure = RecipientState.BOUNCED
            elif not outcome.delivered:
                next_at = self._retry.next_attempt(
                    attempts=claimed.attempts + 1, created_at=claimed.created_at, now=now,
                    random_unit=self._rng.random())
                if next_at is None:
                    failure = RecipientState.EXPIRED
            dispositions.append(Disposition(
                claimed.recipient_id, attempt, delivered=outcome.delivered,
                next_attempt_at=next_at,
                defer_reason=(DeferReason.TLS_REQUIRED if notices.is_tls_failure(outcome)
                              else DeferReason.TEMPORARY_FAILURE) if next_at else None))
            pending_failures.append(failure)
        return dispositions, pending_failures

    def _wants_pickup(self, job: Job, result: AttemptResult, now: datetime) -> frozenset[int]:
        if self._pickup is None:
            return frozenset()
        return frozenset(
            claimed.recipient_id
            for claimed, outcome in zip(job.recipients, result.outcomes, strict=True)
            if not outcome.delivered and self._pickup.wanted(
                claimed, outcome.code, outcome.text, outcome.remote, now))

    def _phi_tls_final(self, claimed: ClaimedRecipient, outcome: RecipientOutcome,
                       domain: str, now: datetime) -> RecipientOutcome:
        """PHI that waited ``phi_tls_max_wait_seconds`` for a TLS route bounces now."""
        if notices.phi_tls_expired(self._delivery, phi=claimed.phi, outcome=outcome,
                                   created_at=claimed.created_at, now=now):
            return notices.phi_tls_outcome(outcome, domain,
                                           self._delivery.phi_tls_max_wait_seconds)
        return outcome

    def _notify_delay(self, job: Job, result: AttemptResult, original: bytes,
                      delayed: Sequence[tuple[ClaimedRecipient, RecipientOutcome]],
                      now: datetime) -> None:
        notices.queue_delay_notice(
            self._store, original=original, sender=job.first.sender,
            delayed=[(c.recipient_id, c.address, outcome) for c, outcome in delayed],
            reporting_mta=self._settings.server.hostname, host=result.host,
            arrival=job.first.created_at, now=now,
            about=notices.About(queue_id=job.message_id, phi=job.first.phi,
                                from_domain=self._settings.server.domain))
        log_event(log, "delivery_delay_notice", id=job.message_id, rcpts=len(delayed))

    def _bounce(self, job: Job, result: AttemptResult, original: bytes,
                failed: Sequence[tuple[ClaimedRecipient, RecipientOutcome, RecipientState]],
                now: datetime) -> None:
        remote_mta = result.host.partition("[")[0] if result.host else None
        dsn = build_dsn(
            original=original, envelope_sender=job.first.sender,
            failed=[FailedRecipient(
                address=claimed.address, status=failure_status(outcome, state),
                remote_mta=remote_mta if outcome.remote else None,
                diagnostic=(f"smtp; {outcome.code} {outcome.text}" if outcome.remote
                            else outcome.text),
                last_attempt=now) for claimed, outcome, state in failed],
            reporting_mta=self._settings.server.hostname, arrival=job.first.created_at,
            queue_id=job.message_id, phi=job.first.phi,
            from_domain=self._settings.server.domain)
        if dsn is None:
            return  # null sender or an automatic message: never bounce a bounce
        # ``now=`` keeps the DSN on the scheduler's clock (due at once, also under a test
        # clock). A DSN about PHI mail inherits its verdict, and with it the TLS it needs.
        queue_report(self._store, recipients=[job.first.sender], body=dsn,
                     phi=job.first.phi, now=now)
        log_event(log, "delivery_bounce_queued", id=job.message_id, rcpts=len(failed))

    def _count_final(self, claimed: ClaimedRecipient, outcome: FinalOutcomeLabel,
                     now: datetime) -> None:
        METRICS.record_recipient(outcome, claimed.message_class)
        METRICS.observe_delivery_latency((now - claimed.created_at).total_seconds(), outcome)

    # -- stopping -------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        """Let running deliveries finish within ``shutdown_timeout_seconds``, cancel the
        rest, and give back every lease we hold: shielded, so that it runs and is logged
        even when whoever stops us gives up waiting (cancels us) first."""
        self._domains.clear()  # nothing new starts; their leases are released below
        self._queued = 0
        try:
            await self._drain()
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

    async def _drain(self) -> None:
        if not self._tasks:
            return
        _, pending = await asyncio.wait(
            set(self._tasks), timeout=self._delivery.shutdown_timeout_seconds)
        for task in pending:
            task.cancel()
        if pending:
            # A delivery stuck outside the event loop (a thread) cannot be interrupted:
            # do not wait for it longer than a moment, its lease is released anyway.
            await asyncio.wait(pending, timeout=1.0)
            log_event(log, "delivery_cancelled_on_stop", jobs=len(pending),
                      level=logging.WARNING)


def _group(claimed: Sequence[ClaimedRecipient], lease_until: datetime, *,
           per_recipient: bool = False) -> list[Job]:
    """One job per message and domain (one transaction), or per recipient under VERP."""
    jobs: dict[tuple[str, str], Job] = {}
    for recipient in claimed:
        key = (recipient.message_id, recipient.address if per_recipient else recipient.domain)
        if key not in jobs:
            jobs[key] = Job(recipient.message_id, recipient.domain, [], lease_until)
        jobs[key].recipients.append(recipient)
    return list(jobs.values())


def _default_tokens(settings: Settings, store: QueueStore) -> TokenSigner | None:
    """The token signer over the store's own database (stores without one: no tokens)."""
    engine = getattr(store, "engine", None)
    return None if engine is None else token_signer(settings, engine)
