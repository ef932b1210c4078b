"""Throttles and the retry schedule: pure functions of an injected clock reading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from phigate.config import DeliverySettings, DomainPolicy
from phigate.mta.delivery.retry import RetrySchedule
from phigate.mta.delivery.throttle import KeyedRateLimiter, Throttles

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


# -- retry schedule ------------------------------------------------------------------------


def test_delay_doubles_from_a_minute_and_is_capped() -> None:
    schedule = RetrySchedule(base_seconds=60, cap_seconds=3600, jitter=0.0)
    delays = [schedule.delay(n, 0.5).total_seconds() for n in range(1, 10)]
    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]


@given(attempts=st.integers(1, 10_000), unit=st.floats(0, 1, exclude_max=True))
def test_jitter_stays_within_ten_percent(attempts: int, unit: float) -> None:
    schedule = RetrySchedule(base_seconds=60, cap_seconds=3600, jitter=0.1)
    nominal = min(3600, 60 * 2 ** (attempts - 1))
    delay = schedule.delay(attempts, unit).total_seconds()
    assert 0.9 * nominal - 1e-6 <= delay < 1.1 * nominal + 1e-6


def test_jitter_spreads_recipients_deferred_together() -> None:
    schedule = RetrySchedule()
    assert schedule.delay(3, 0.0) != schedule.delay(3, 0.99)


def test_expiry_after_the_lifetime_and_last_retry_at_expiry() -> None:
    schedule = RetrySchedule(lifetime_seconds=5 * 24 * 3600)
    almost = T0 + timedelta(days=5) - timedelta(minutes=10)
    # The regular delay (an hour) would overshoot: the last try is at the lifetime.
    assert schedule.next_attempt(attempts=50, created_at=T0, now=almost,
                                 random_unit=0.5) == T0 + timedelta(days=5)
    assert schedule.next_attempt(attempts=51, created_at=T0, now=T0 + timedelta(days=5),
                                 random_unit=0.5) is None


# -- throttles -----------------------------------------------------------------------------


def throttles(**kw: object) -> Throttles:
    return Throttles(DeliverySettings(**kw))  # type: ignore[arg-type]


def test_rate_limit_holds_over_any_window() -> None:
    limits = throttles(rate_per_minute_per_domain=600)  # 10/s, a burst of 10
    sent: list[float] = []
    now = 0.0
    while now < 30.0:
        if limits.try_send("example.test", now):
            sent.append(now)
        else:
            now += min(limits.wait("example.test", now), 0.5)
    for i, start in enumerate(sent):
        in_window = [t for t in sent[i:] if t < start + 1.0]
        assert len(in_window) <= 10 + 10  # burst + one second's rate
    assert 290 <= len(sent) <= 311  # 600/min for 30 s, plus the burst


def test_connection_limits_per_domain_and_global() -> None:
    limits = throttles(max_connections_per_domain=2, max_connections=3,
                       domains={"big.test": DomainPolicy(max_connections=5)})
    a = [limits.try_connect("a.test", 0) for _ in range(3)]
    assert a[2] is None and all(a[:2])
    big = [limits.try_connect("big.test", 0) for _ in range(2)]
    assert big[0] is not None and big[1] is None  # the global cap of 3
    assert a[0] is not None
    limits.release(a[0])
    assert limits.try_connect("big.test", 0) is not None
    assert limits.connections() == 3


def test_per_domain_rate_override() -> None:
    limits = throttles(rate_per_minute_per_domain=600,
                       domains={"slow.test": DomainPolicy(rate_per_minute=6)})
    assert limits.try_send("slow.test", 0)
    assert not limits.try_send("slow.test", 1)
    assert limits.wait("slow.test", 1) == 9.0
    assert limits.try_send("slow.test", 10)


def test_a_rate_limit_reply_pauses_then_slows_the_destination() -> None:
    limits = throttles(rate_per_minute_per_domain=120, max_connections_per_domain=4,
                       rate_limit_pause_seconds=60, rate_limit_slow_seconds=600)
    slots = [limits.try_connect("busy.test", 0) for _ in range(3)]
    limits.slow_down("busy.test", 10)

    assert not limits.try_send("busy.test", 30)  # paused
    assert limits.try_connect("busy.test", 30) is None
    assert limits.wait("busy.test", 30) == 40
    assert limits.over_connection_limit("busy.test", 30)  # workers should give slots back
    assert limits.try_send("other.test", 30)  # only that destination

    for slot in slots:
        assert slot is not None
        limits.release(slot)
    # After the pause: one connection, a quarter of the rate (30/min: one per 2 s).
    assert limits.try_connect("busy.test", 70) is not None
    assert limits.try_connect("busy.test", 70) is None
    sent = [t / 10 for t in range(700, 1300) if limits.try_send("busy.test", t / 10)]
    assert 25 <= len(sent) <= 32  # ~30 in the minute after the pause, not 120
    # And back to normal once the slow period is over.
    assert not limits.slowed("busy.test", 611)
    burst = sum(limits.try_send("busy.test", 700) for _ in range(5))
    assert burst == 2  # full burst of 2 (120/min) again


def test_per_user_rate() -> None:
    limiter = KeyedRateLimiter(rate_per_minute=60, burst=3)
    assert [limiter.allow("alice", 0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("bob", 0)
    assert limiter.allow("alice", 1.0)

