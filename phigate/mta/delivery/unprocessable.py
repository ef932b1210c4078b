"""What delivery does with a message it cannot process (see :mod:`.poison`).

- A poison header (:class:`~.poison.PoisonMessage`): every recipient of the job is bounced
  at once, after the DSN (5.3.4 / 5.6.0) is queued.
- Any other failure counts against the message (``note_processing_error``: its leases are
  released, it is retried); when that parks it ``corrupt``, the sender gets the 5.3.0 DSN.
- Each parked or bounced message moves ``phigate_messages_unprocessable_total{reason}``
  (an alert watches it); a DKIM error also counts one ``dkim_signing_failures_total``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from phigate.config import Settings
from phigate.mta.delivery.dkim import DkimError
from phigate.mta.delivery.poison import Unprocessable, unprocessable_dsn
from phigate.mta.delivery.prepare import PrepareTimeout
from phigate.mta.delivery.reports import queue_report
from phigate.observability.logs import log_event
from phigate.observability.metrics import METRICS
from phigate.queue.crypto import DecryptionError
from phigate.queue.models import RecipientState
from phigate.queue.store import ClaimedRecipient, QueueStore

log = logging.getLogger(__name__)
TIMEOUTS_BEFORE_PARKING = 2


class Unprocessables:
    """Bounces poison and reports parked messages for one scheduler (runs in a thread)."""

    def __init__(self, settings: Settings, store: QueueStore, owner: str,
                 now: Callable[[], datetime]) -> None:
        self._settings, self._store, self._owner, self._now = settings, store, owner, now

    def bounce(self, message_id: str, recipients: Sequence[ClaimedRecipient],
               reason: Unprocessable) -> None:
        """The header is poison: DSN first (a crash in between sends two, never none),
        then every recipient of the job bounced."""
        now = self._now()
        self._report(message_id, recipients, reason, now)
        for recipient in recipients:
            self._store.mark_failed(recipient.recipient_id, self._owner,
                                    state=RecipientState.BOUNCED, code=554,
                                    text=f"{reason.status} message not processable "
                                         f"({reason.value})", now=now)
        log_event(log, "delivery_poison_bounced", level=logging.WARNING, id=message_id,
                  reason=reason.value, rcpts=len(recipients))

    def note_error(self, message_id: str, recipients: Sequence[ClaimedRecipient],
                   error: Exception) -> bool:
        """Count ``error`` against the message; True when that parked it (then reported)."""
        reason = Unprocessable.REPEATED_ERRORS
        if isinstance(error, DkimError):
            reason = Unprocessable.DKIM
            METRICS.record_dkim_failure(error.algorithm)
        elif isinstance(error, DecryptionError):
            reason = Unprocessable.UNDECRYPTABLE
        elif isinstance(error, PrepareTimeout):
            reason = Unprocessable.TIMEOUT
        # A step that ran out of time holds a thread each time: twice is enough.
        limit = TIMEOUTS_BEFORE_PARKING if reason is Unprocessable.TIMEOUT else None
        parked = self._store.note_processing_error(message_id, limit=limit)
        log_event(log, "delivery_processing_error", level=logging.ERROR, id=message_id,
                  error=type(error).__name__, parked=parked)
        if parked:
            self._report(message_id, recipients, reason, self._now())
        return parked

    def _report(self, message_id: str, recipients: Sequence[ClaimedRecipient],
                reason: Unprocessable, now: datetime) -> None:
        METRICS.record_unprocessable(reason.value)
        first = recipients[0]
        dsn = unprocessable_dsn(
            sender=first.sender, recipients=[r.address for r in recipients], reason=reason,
            queue_id=message_id, reporting_mta=self._settings.server.hostname,
            from_domain=self._settings.server.domain, arrival=first.created_at, now=now)
        if dsn is not None:
            queue_report(self._store, recipients=[first.sender], body=dsn, phi=first.phi,
                         now=now)
