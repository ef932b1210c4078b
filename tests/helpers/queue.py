"""Moving claimed recipients on the way delivery does: through ``store.record_outcomes``
(the one path production runs), never through a shortcut of the tests' own."""

from __future__ import annotations

from datetime import datetime

from phigate.queue.models import DeferReason
from phigate.queue.store import SqlQueueStore
from phigate.queue.transitions import AttemptRecord, Disposition


def delivered(store: SqlQueueStore, recipient_id: int, owner: str, *, now: datetime) -> bool:
    """Record a successful attempt for the leased recipient; False if the lease was lost."""
    attempt = AttemptRecord(started_at=now, host="mx.test", code=250, text="2.0.0 Ok")
    [ok] = store.record_outcomes(owner, [Disposition(recipient_id, attempt, delivered=True)],
                                 now=now)
    return ok


def deferred(store: SqlQueueStore, recipient_id: int, owner: str, *, now: datetime,
             next_attempt_at: datetime, code: int | None = 451,
             text: str | None = "4.4.1 connection failed", host: str = "mx.test",
             reason: DeferReason = DeferReason.TEMPORARY_FAILURE) -> bool:
    """Record a failed attempt and defer the recipient; False if the lease was lost."""
    attempt = AttemptRecord(started_at=now, host=host, code=code, text=text)
    [ok] = store.record_outcomes(
        owner, [Disposition(recipient_id, attempt, next_attempt_at=next_attempt_at,
                            defer_reason=reason)], now=now)
    return ok
