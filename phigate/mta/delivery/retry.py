"""The retry schedule, as pure functions of the attempt count and the clock reading.

After the ``n``-th failed attempt (``n`` >= 1) the next one is due ``base * 2**(n-1)``
seconds later, at most ``cap``, times a jitter factor in ``[1 - jitter, 1 + jitter)`` so
recipients deferred together do not come back together. A recipient older than the queue
lifetime is not retried: it expires (and bounces). The last retry is moved up to the
moment of expiry when the regular delay would overshoot it, so the final verdict is given
at the lifetime, not hours later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetrySchedule:
    base_seconds: float = 60.0
    cap_seconds: float = 3600.0
    jitter: float = 0.1
    lifetime_seconds: float = 5 * 24 * 3600.0

    def delay(self, attempts: int, random_unit: float) -> timedelta:
        """Delay after ``attempts`` failed attempts; ``random_unit`` is uniform in [0, 1)."""
        exponent = min(max(attempts, 1) - 1, 62)  # 2**62 s is past any cap
        seconds = min(self.cap_seconds, self.base_seconds * 2.0**exponent)
        factor = 1.0 + self.jitter * (2.0 * random_unit - 1.0)
        return timedelta(seconds=seconds * factor)

    def expires_at(self, created_at: datetime) -> datetime:
        return created_at + timedelta(seconds=self.lifetime_seconds)

    def expired(self, created_at: datetime, now: datetime) -> bool:
        return now >= self.expires_at(created_at)

    def next_attempt(self, *, attempts: int, created_at: datetime, now: datetime,
                     random_unit: float) -> datetime | None:
        """When to try again after a temporary failure; None: the recipient has expired."""
        if self.expired(created_at, now):
            return None
        return min(now + self.delay(attempts, random_unit), self.expires_at(created_at))
