"""What the delivery scheduler does about bounce incidents (:mod:`phigate.policy.incidents`).

- A refusal whose reason is on our side (``550 5.7.1 ... blocked using a DNSBL`` at RCPT,
  a failed SPF check, no PTR, our sender rejected, rate limits) opens or extends the
  incident of the destination domain; the recipient is not suppressed.
- While the incident holds, *marketing* mail to the domain is deferred without an attempt
  until the hold ends; treatment and operations mail keeps its normal schedule (so an
  appointment reminder is still tried, and its delivery ends the incident).
- A delivery to the domain ends its incident.

The set of domains with an open incident is read at most every ``refresh_seconds``, so the
hot path costs no query when there is none.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime

from phigate.mta.delivery.outcomes import RecipientOutcome
from phigate.observability.logs import log_event
from phigate.policy.feedback.reasons import is_sender_side
from phigate.policy.incidents import IncidentStore
from phigate.queue.models import MessageClass
from phigate.queue.store import ClaimedRecipient, QueueStore

log = logging.getLogger("phigate.delivery")

HOLD_TEXT = ("4.7.0 marketing mail to this domain waits: it refused our mail for a reason on "
             "our side (see phigate feedback incidents)")


class IncidentWatch:
    def __init__(self, incidents: IncidentStore, *, refresh_seconds: float = 30.0) -> None:
        self._incidents = incidents
        self._refresh = refresh_seconds
        self._open: set[str] = set()
        self._read_at = float("-inf")

    def _open_domains(self) -> set[str]:
        if time.monotonic() - self._read_at >= self._refresh:
            self._open = {entry.domain for entry in self._incidents.entries()}
            self._read_at = time.monotonic()
        return self._open

    @staticmethod
    def may_hold(recipients: Sequence[ClaimedRecipient]) -> bool:
        """Whether :meth:`hold` could defer this job (marketing mail): no I/O, so the
        scheduler asks on the event loop and other mail pays no trip to a thread."""
        return bool(recipients) and recipients[0].message_class == MessageClass.MARKETING

    def hold(self, store: QueueStore, owner: str, recipients: Sequence[ClaimedRecipient],
             domain: str, *, now: datetime) -> bool:
        """Defer a marketing job to a domain under an incident; True if it was (runs in a
        thread)."""
        if not self.may_hold(recipients):
            return False
        if domain.lower() not in self._open_domains():
            return False
        until = self._incidents.held_until(domain, now=now)
        if until is None:
            return False
        for recipient in recipients:
            store.defer(recipient.recipient_id, owner, next_attempt_at=until, code=451,
                        text=HOLD_TEXT)
        log_event(log, "delivery_incident_hold", id=recipients[0].message_id,
                  rcpts=len(recipients), reason="incident")
        return True

    def observe(self, domain: str, outcomes: Sequence[RecipientOutcome], *,
                now: datetime) -> None:
        """After an attempt: a delivery ends the domain's incident; a refusal for a reason
        on our side opens or extends it (runs in a thread)."""
        domain = domain.lower()
        if any(outcome.delivered for outcome in outcomes):
            if domain in self._open_domains() and self._incidents.resolve(domain):
                self._open.discard(domain)
            return
        for outcome in outcomes:
            category = outcome.category if outcome.remote else None
            if is_sender_side(category):
                count = self._incidents.record_now(domain, str(category), now=now)
                self._open.add(domain)
                log_event(log, "delivery_incident", reason=category, count=count)
                return
