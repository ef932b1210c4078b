"""Pure rules of the scheduler's dispose step: the DSN status of a final failure, and the
metric outcome of an attempt (no I/O, no state)."""

from __future__ import annotations

from phigate.mta.delivery.outcomes import RecipientOutcome
from phigate.observability.labels import AttemptOutcomeLabel
from phigate.queue.models import RecipientState


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
