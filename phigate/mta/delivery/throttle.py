"""Throttles: per-destination connections and message rate, a global connection cap,
and a backoff when a destination tells us to slow down.

Pure bookkeeping: every method takes ``now`` (seconds, any monotonic origin) and nothing
sleeps, so tests drive it with a fake clock. The scheduler asks before it connects
(:meth:`Throttles.try_connect`) and before each message (:meth:`Throttles.try_send`), and
reports rate-limit replies (:meth:`Throttles.slow_down`).

A rate is a token bucket (``rate`` per minute, a burst of one second's worth, at least
one): over any window of ``t`` seconds at most ``burst + rate * t / 60`` messages go.
A slowed-down destination has both its rate and its burst cut to a quarter.

After a slow-down (an attempt whose :class:`~phigate.mta.delivery.outcomes.Backoff` is
``SLOW_DOWN``: a 421, a 4.7.x deferral about rate or too many connections, a refused
connection) the destination is paused (no message) for ``rate_limit_pause_seconds`` and
then runs at a quarter of its rate with one connection until ``rate_limit_slow_seconds``
after the last one: Postfix's "destination concurrency feedback", simplified. Nothing else
slows a destination: a greylisted recipient ("450 4.2.0", "451 4.7.1 try again later")
waits for its own retry, and our own refusal to send without TLS is not the remote's
doing. The reply is classified where the outcome is made; nothing here reads reply text.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from phigate.config import DeliverySettings

SLOW_RATE_FACTOR = 0.25
#: Float slack: waiting exactly ``wait()`` seconds must yield a token, or a caller that
#: sleeps for ``wait()`` would spin on ever smaller waits; for the same reason no wait is
#: shorter than a millisecond (clocks with microsecond steps would not move at all).
_EPSILON = 1e-6
_MIN_WAIT = 0.001


@dataclass
class TokenBucket:
    """``rate_per_minute`` tokens per minute, at most ``burst`` saved up."""

    rate_per_minute: float
    burst: float
    tokens: float = -1.0  # -1: full on first use
    updated: float = 0.0

    def _refill(self, now: float, rate_factor: float) -> None:
        # A slowed-down bucket saves up less, too: no burst right after the pause.
        burst = max(1.0, self.burst * rate_factor)
        if self.tokens < 0:
            self.tokens, self.updated = burst, now
            return
        elapsed = max(0.0, now - self.updated)
        rate = self.rate_per_minute * rate_factor
        self.tokens = min(burst, self.tokens + elapsed * rate / 60.0)
        self.updated = now

    def try_take(self, now: float, *, rate_factor: float = 1.0) -> bool:
        self._refill(now, rate_factor)
        if self.tokens >= 1.0 - _EPSILON:
            self.tokens = max(0.0, self.tokens - 1.0)
            return True
        return False

    def wait(self, now: float, *, rate_factor: float = 1.0) -> float:
        """Seconds until a token is there (0 if one is there now)."""
        rate = self.rate_per_minute * rate_factor
        self._refill(now, rate_factor)
        if self.tokens >= 1.0 - _EPSILON:
            return 0.0
        if rate <= 0:
            return float("inf")
        return max(_MIN_WAIT, (1.0 - self.tokens) * 60.0 / rate)


def make_bucket(rate_per_minute: float) -> TokenBucket:
    return TokenBucket(rate_per_minute, burst=max(1.0, rate_per_minute / 60.0))


class KeyedRateLimiter:
    """A token bucket per key (per-user submission rates): ``allow(key, now)``."""

    def __init__(self, rate_per_minute: float, burst: float | None = None) -> None:
        self._rate = rate_per_minute
        self._burst = burst if burst is not None else max(1.0, rate_per_minute / 60.0)
        self._buckets: dict[Hashable, TokenBucket] = {}

    def allow(self, key: Hashable, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._rate, self._burst)
        return bucket.try_take(now)


@dataclass
class _Destination:
    max_connections: int
    bucket: TokenBucket
    connections: int = 0
    paused_until: float = float("-inf")
    slow_until: float = float("-inf")

    def slowed(self, now: float) -> bool:
        return now < self.slow_until

    def connection_limit(self, now: float) -> int:
        return 1 if self.slowed(now) else self.max_connections

    def rate_factor(self, now: float) -> float:
        return SLOW_RATE_FACTOR if self.slowed(now) else 1.0


@dataclass(frozen=True)
class ConnectionSlot:
    """Proof of a held connection slot; give it back with :meth:`Throttles.release`."""

    domain: str
    serial: int


class Throttles:
    def __init__(self, settings: DeliverySettings) -> None:
        self._settings = settings
        self._destinations: dict[str, _Destination] = {}
        self._connections = 0
        self._serial = 0

    def _destination(self, domain: str) -> _Destination:
        destination = self._destinations.get(domain)
        if destination is None:
            policy = self._settings.domains.get(domain)
            connections = (policy.max_connections if policy and policy.max_connections
                           else self._settings.max_connections_per_domain)
            rate = (policy.rate_per_minute if policy and policy.rate_per_minute
                    else self._settings.rate_per_minute_per_domain)
            destination = _Destination(max(1, connections), make_bucket(rate))
            self._destinations[domain] = destination
        return destination

    # -- connections --------------------------------------------------------------------

    def try_connect(self, domain: str, now: float) -> ConnectionSlot | None:
        """A connection slot for ``domain``, or None when its or the global cap is reached."""
        destination = self._destination(domain)
        if now < destination.paused_until:
            return None
        if destination.connections >= destination.connection_limit(now):
            return None
        if self._connections >= max(1, self._settings.max_connections):
            return None
        destination.connections += 1
        self._connections += 1
        self._serial += 1
        return ConnectionSlot(domain, self._serial)

    def release(self, slot: ConnectionSlot) -> None:
        destination = self._destination(slot.domain)
        destination.connections -= 1
        self._connections -= 1

    def connections(self, domain: str | None = None) -> int:
        if domain is None:
            return self._connections
        return self._destination(domain).connections

    def over_connection_limit(self, domain: str, now: float) -> bool:
        """True when ``domain`` has more connections than allowed now (after a slow-down):
        a worker should finish its current message and give its slot back."""
        destination = self._destination(domain)
        return destination.connections > destination.connection_limit(now)

    # -- messages -----------------------------------------------------------------------

    def try_send(self, domain: str, now: float) -> bool:
        """Take one message's worth of rate for ``domain``; False: wait :meth:`wait`."""
        destination = self._destination(domain)
        if now < destination.paused_until:
            return False
        return destination.bucket.try_take(now, rate_factor=destination.rate_factor(now))

    def wait(self, domain: str, now: float) -> float:
        """Seconds until ``domain`` may take another message."""
        destination = self._destination(domain)
        if now < destination.paused_until:
            return destination.paused_until - now
        return destination.bucket.wait(now, rate_factor=destination.rate_factor(now))

    def slow_down(self, domain: str, now: float) -> None:
        """``domain`` answered with a rate-limit reply: pause, then go slowly for a while."""
        destination = self._destination(domain)
        destination.paused_until = max(destination.paused_until,
                                       now + self._settings.rate_limit_pause_seconds)
        destination.slow_until = now + self._settings.rate_limit_slow_seconds
        # Drop saved-up tokens: one message at the end of the pause, then the slow rate
        # (no burst of everything that waited).
        destination.bucket.tokens = 1.0
        destination.bucket.updated = destination.paused_until

    def slowed(self, domain: str, now: float) -> bool:
        return self._destination(domain).slowed(now)

    def paused(self, domain: str, now: float) -> bool:
        return now < self._destination(domain).paused_until
