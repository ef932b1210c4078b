"""In-memory sliding-window limits for the pickup page (per token and per client IP).

Per process: with several HTTP nodes each has its own window, which only loosens the limit
by the node count; the 5-tries lockout is in the database and holds everywhere.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable


class SlidingWindow:
    def __init__(self, limit: int, window_seconds: float, *,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._limit = limit
        self._window = window_seconds
        self._clock = clock
        self._max_keys = max_keys
        self._hits: dict[str, collections.deque[float]] = {}

    def allow(self, key: str) -> bool:
        """Count one hit for ``key``; False (and not counted) when over the limit."""
        now = self._clock()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self._max_keys:
                self._prune(now)
            hits = self._hits[key] = collections.deque()
        while hits and hits[0] <= now - self._window:
            hits.popleft()
        if len(hits) >= self._limit:
            return False
        hits.append(now)
        return True

    def _prune(self, now: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - self._window]:
            del self._hits[key]
        if len(self._hits) >= self._max_keys:
            self._hits.clear()  # under a flood, forget rather than grow without bound


class PickupLimits:
    """Codes: 1 a minute and 5 an hour per token; 20 an hour per IP. Every page hit: 120
    a minute per IP."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.code_per_token_minute = SlidingWindow(1, 60, clock=clock)
        self.code_per_token_hour = SlidingWindow(5, 3600, clock=clock)
        self.code_per_ip = SlidingWindow(20, 3600, clock=clock)
        self.hits_per_ip = SlidingWindow(120, 60, clock=clock)

    def may_send_code(self, token_key: str, ip: str) -> bool:
        return (self.code_per_ip.allow(ip) and self.code_per_token_minute.allow(token_key)
                and self.code_per_token_hour.allow(token_key))
