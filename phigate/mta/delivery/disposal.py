"""The dispose step of the scheduler: after an attempt, record it and move every recipient
on (delivered, deferred with a typed reason, switched to pickup, or bounced / expired with
a DSN), with its metrics, delay notices and incident observations; and the pure rules it
applies (the DSN status of a final failure, the metric outcome of an attempt).

Attempts, deliveries and deferrals of one job are one transaction (one fsync).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from datetime import datetime

from phigate.clock import Clock
from phigate.config import Settings
from phigate.mta.delivery import notices
from phigate.mta.delivery.dsn import FailedRecipient, build_dsn
from phigate.mta.delivery.incident_watch import IncidentWatch
from phigate.mta.delivery.jobs import Job
from phigate.mta.delivery.outcomes import AttemptResult, RecipientOutcome
from phigate.mta.delivery.reports import queue_report
from phigate.mta.delivery.retry import RetrySchedule
from phigate.observability.labels import AttemptOutcomeLabel, FinalOutcomeLabel, TlsLevelLabel
from phigate.observability.logs import log_event
from phigate.observability.metrics import METRICS
from phigate.pickup.switch import PickupSwitch
from phigate.queue.models import DeferReason, RecipientState
from phigate.queue.store import ClaimedRecipient, QueueStore
from phigate.queue.transitions import AttemptRecord, Disposition

#: The scheduler's events keep the logger name they had when all of this was scheduler.py.
log = logging.getLogger("phigate.mta.delivery.scheduler")


def failure_status(outcome: RecipientOutcome, state: RecipientState) -> str:
    status = outcome.status
    if state is RecipientState.EXPIRED and status.startswith("4."):
        # Expired after temporary failures: a permanent failure now, same reason.
        return "5." + status[2:]
    return status


def attempt_outcome(outcome: RecipientOutcome) -> AttemptOutcomeLabel:
    if outcome.delivered:
        return "success"
    if not outcome.remote and outcome.status == "4.7.5":  # TlsPolicyError, unverified cert
        return "tls_policy"
    return "permanent_failure" if outcome.permanent else "temporary_failure"


class Disposer:
    """The dispose step: record one job's attempt and move every recipient on (blocking:
    the scheduler runs it on a thread)."""

    def __init__(self, settings: Settings, store: QueueStore, owner: str, *, clock: Clock,
                 retry: RetrySchedule, rng: random.Random, pickup: PickupSwitch | None,
                 incidents: IncidentWatch | None) -> None:
        self._settings = settings
        self._delivery = settings.delivery
        self._store = store
        self._owner = owner
        self._clock = clock
        self._retry = retry
        self._rng = rng
        self._pickup = pickup
        self._incidents = incidents

    def dispose(self, job: Job, result: AttemptResult, original: bytes,
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
        recorded = self._store.record_outcomes(self._owner, dispositions, now=now)
        delayed: list[tuple[ClaimedRecipient, RecipientOutcome]] = []
        for claimed, outcome, failure, ok in zip(job.recipients, outcomes,
                                                 pending_failures, recorded, strict=True):
            if not ok:
                continue  # the lease ran out and another node owns the recipient now
            METRICS.record_delivery_attempt(attempt_outcome(outcome), tls=tls_label)
            if outcome.delivered:
                _count_final(claimed, "delivered", now)
            elif claimed.recipient_id in to_pickup and self._pickup is not None:
                self._pickup.switch(claimed, self._owner, now)
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
            self._fail(job, result, original, failed, now)
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

    def _fail(self, job: Job, result: AttemptResult, original: bytes,
              failed: Sequence[tuple[ClaimedRecipient, RecipientOutcome, RecipientState]],
              now: datetime) -> None:
        # The bounce is queued before the recipients are marked: a crash in between sends a
        # second bounce, never none.
        self._bounce(job, result, original, failed, now)
        for claimed, outcome, state in failed:
            self._store.mark_failed(claimed.recipient_id, self._owner, state=state,
                                    code=outcome.code, text=outcome.stored_text, now=now)
            _count_final(claimed, "bounced" if state is RecipientState.BOUNCED
                         else "expired", now)

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


def _count_final(claimed: ClaimedRecipient, outcome: FinalOutcomeLabel,
                 now: datetime) -> None:
    METRICS.record_recipient(outcome, claimed.message_class)
    METRICS.observe_delivery_latency((now - claimed.created_at).total_seconds(), outcome)
