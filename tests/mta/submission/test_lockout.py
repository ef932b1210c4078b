"""Lockouts per (user name, client IP), the name's tarpit, never-locked networks, and the
admin's view and unlock: all in the database, so every process and node shares them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from phigate.mta.submission.auth import (
    MAX_LOCKOUT_SECONDS,
    MAX_TARPIT_SECONDS,
    Failure,
    LockoutTracker,
    parse_networks,
)
from phigate.runtime import Runtime


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def tracker(runtime: Runtime, clock: Clock, **options: object) -> LockoutTracker:
    values: dict[str, object] = {"max_failures": 3, "base_lockout_seconds": 60,
                                 "tarpit_failures": 10}
    values.update(options)
    return LockoutTracker(runtime.engine, clock=clock, **values)  # type: ignore[arg-type]


def test_a_pair_lockout_doubles_is_capped_and_a_success_resets_the_count(
        runtime: Runtime) -> None:
    clock = Clock()
    locks = tracker(runtime, clock, tarpit_failures=1000)
    assert [locks.failure("192.0.2.1", "clinic").locked_out for _ in range(3)] == [
        False, False, True]
    assert locks.admit("192.0.2.1", "clinic").locked_for == 60
    assert locks.admit("192.0.2.1", "other").locked_for == 0  # another name from there
    assert locks.admit("198.51.100.7", "clinic").locked_for == 0  # the name from elsewhere
    clock.advance(61)
    assert locks.admit("192.0.2.1", "clinic").locked_for == 0
    for _ in range(3):
        locks.failure("192.0.2.1", "clinic")
    assert locks.admit("192.0.2.1", "clinic").locked_for == 120  # the second one doubles
    for _ in range(12):
        clock.advance(MAX_LOCKOUT_SECONDS - 1)
        for _ in range(3):
            locks.failure("192.0.2.1", "clinic")
    assert locks.admit("192.0.2.1", "clinic").locked_for == MAX_LOCKOUT_SECONDS
    locks.failure("192.0.2.9", "nurse")
    locks.success("192.0.2.9", "nurse")
    locks.failure("192.0.2.9", "nurse")
    locks.failure("192.0.2.9", "nurse")
    assert locks.admit("192.0.2.9", "nurse").locked_for == 0  # the success reset the count
    assert locks.lockouts_total == 14


def test_guesses_from_elsewhere_slow_the_name_but_never_its_own_client(
        runtime: Runtime) -> None:
    clock = Clock()
    locks = tracker(runtime, clock)
    locks.success("10.0.0.5", "ehr")  # the EHR's own server, earlier today
    clock.advance(3600)
    for attacker in range(40):  # 4 addresses, 10 guesses each: past the tarpit threshold
        locks.failure(f"203.0.113.{attacker % 4}", "ehr")
    own = locks.admit("10.0.0.5", "ehr")
    assert own.locked_for == 0 and own.delay == 0
    stranger = locks.admit("198.51.100.1", "ehr")  # never logged in: slowed, not refused
    assert stranger.locked_for == 0
    assert stranger.delay == MAX_TARPIT_SECONDS
    assert locks.admit("203.0.113.0", "ehr").locked_for > 0  # the guessers are refused
    lockouts, tarpits = locks.current()
    assert {(lock.user, lock.client_ip) for lock in lockouts} == {
        ("ehr", f"203.0.113.{n}") for n in range(4)}
    assert [(t.user, t.failures) for t in tarpits] == [("ehr", 40)]
    assert locks.admit("10.0.0.5", "EHR") == locks.admit("10.0.0.5", "nobody")  # exact names
    # The exemption lasts a day after the last success, and the counts a day after the
    # last failure.
    clock.advance(23 * 3600)
    assert locks.admit("10.0.0.5", "ehr").delay > 0
    clock.advance(3600)
    assert locks.admit("198.51.100.1", "ehr").delay == 0


def test_the_tarpit_starts_at_its_threshold_and_doubles(runtime: Runtime) -> None:
    clock = Clock()
    locks = tracker(runtime, clock, max_failures=3, tarpit_failures=5)
    delays, started = [], []
    for guess in range(8):  # from a new address each time: no pair gets locked out
        delays.append(locks.admit(f"192.0.2.{guess}", "clinic").delay)
        started.append(locks.failure(f"192.0.2.{guess}", "clinic").tarpit_started)
    assert delays == [0, 0, 0, 0, 0, 1, 2, 4]
    assert started == [False] * 4 + [True] + [False] * 3  # reported once, at the crossing


def test_never_lock_networks_are_neither_refused_nor_slowed_nor_counted(
        runtime: Runtime) -> None:
    clock = Clock()
    locks = tracker(runtime, clock, tarpit_failures=3,
                    never_lock_networks=parse_networks(["10.1.0.0/16", "2001:db8::/32"]))
    for ip in ("10.1.2.3", "::ffff:10.1.2.3", "2001:db8::7"):
        for _ in range(10):
            assert locks.failure(ip, "ehr") == Failure()
        assert locks.admit(ip, "ehr").locked_for == 0
    assert locks.admit("192.0.2.1", "ehr").delay == 0  # their failures did not count
    assert locks.current() == ([], [])


def test_ipv4_mapped_addresses_are_the_same_client(runtime: Runtime) -> None:
    locks = tracker(runtime, Clock())
    for _ in range(3):
        locks.failure("::ffff:192.0.2.1", "clinic")
    assert locks.admit("192.0.2.1", "clinic").locked_for == 60


def test_another_process_sees_and_clears_the_lockouts(runtime: Runtime) -> None:
    clock = Clock()
    serving = tracker(runtime, clock)
    for ip in ("192.0.2.1", "192.0.2.2"):
        for _ in range(3):
            serving.failure(ip, "clinic")
    other = Runtime.open(runtime.settings)  # the CLI's own engine
    try:
        admin = tracker(other, clock)
        assert len(admin.current()[0]) == 2
        assert admin.unlock("clinic", "192.0.2.1") == 1
        assert serving.admit("192.0.2.1", "clinic").locked_for == 0
        assert serving.admit("192.0.2.2", "clinic").locked_for == 60
        assert admin.unlock("clinic") == 1
        assert serving.admit("192.0.2.2", "clinic").locked_for == 0
        assert admin.unlock("clinic") == 0
        # The escalation was cleared too: the next lockout is the first one again.
        for _ in range(3):
            serving.failure("192.0.2.2", "clinic")
        assert serving.admit("192.0.2.2", "clinic").locked_for == 60
    finally:
        other.close()


def test_prune_forgets_only_rows_with_nothing_left_to_remember(runtime: Runtime) -> None:
    clock = Clock()
    locks = tracker(runtime, clock)
    for _ in range(3):
        locks.failure("192.0.2.1", "locked")
    locks.failure("192.0.2.2", "typo")
    assert locks.prune() == 0
    clock.advance(2 * 3600)
    locks.success("192.0.2.3", "fine")
    clock.advance(23 * 3600)
    assert locks.prune() == 4  # the pair and name rows of locked and typo, not fine's
    clock.advance(2 * 3600)
    assert locks.prune() == 1
