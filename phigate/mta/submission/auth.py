"""AUTH for the submission server: password checks off the event loop, and lockouts.

After ``max_failures`` failed attempts a client IP, and separately a user name, is locked
out; each further lockout of the same key doubles in length (up to a day). While locked out,
AUTH is answered with a temporary failure without checking the password, so a brute-force
client learns nothing, and the scrypt work is not spent on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from phigate.observability.labels import LockoutKindLabel
from phigate.observability.logs import log_event

log = logging.getLogger("phigate.auth")

MAX_LOCKOUT_SECONDS = 24 * 3600


@dataclass
class _Record:
    failures: int = 0
    lockouts: int = 0
    locked_until: float = 0.0


class LockoutTracker:
    def __init__(
        self,
        *,
        max_failures: int,
        base_lockout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max(1, max_failures)
        self.base_lockout_seconds = base_lockout_seconds
        self._clock = clock
        self._records: dict[str, _Record] = {}
        self.failures_total = 0
        self.lockouts_total = 0

    def locked_for(self, ip: str, user: str) -> float:
        """Seconds left on the longest lockout of this IP or user (0 if none)."""
        now = self._clock()
        return max(
            (r.locked_until - now for r in self._records_for(ip, user) if r.locked_until > now),
            default=0.0,
        )

    def failure(self, ip: str, user: str) -> list[LockoutKindLabel]:
        """Count a failed attempt; return what it newly locked out (client IP, user)."""
        self.failures_total += 1
        now = self._clock()
        locked: list[LockoutKindLabel] = []
        keys: tuple[tuple[LockoutKindLabel, str], ...] = (
            ("client_ip", f"ip:{ip}"), ("user", f"user:{user.lower()}")
        )
        for kind, key in keys:
            record = self._records.setdefault(key, _Record())
            record.failures += 1
            if record.failures >= self.max_failures:
                record.lockouts += 1
                record.failures = 0
                duration = min(
                    self.base_lockout_seconds * 2 ** (record.lockouts - 1), MAX_LOCKOUT_SECONDS
                )
                record.locked_until = now + duration
                self.lockouts_total += 1
                locked.append(kind)
                log_event(log, "auth_lockout", level=logging.WARNING, kind=kind,
                          seconds=int(duration), lockouts=record.lockouts)
        return locked

    def success(self, ip: str, user: str) -> None:
        """A good login clears the failure count (not the escalation of past lockouts)."""
        for record in self._records_for(ip, user):
            record.failures = 0

    def _records_for(self, ip: str, user: str) -> list[_Record]:
        keys = (f"ip:{ip}", f"user:{user.lower()}")
        return [self._records[k] for k in keys if k in self._records]
