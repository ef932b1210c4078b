"""Lockouts grow: each further lockout of the same client IP or user doubles."""

from __future__ import annotations

from phigate.mta.submission.auth import MAX_LOCKOUT_SECONDS, LockoutTracker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lockout_doubles_and_is_capped_and_a_success_resets_the_count() -> None:
    clock = Clock()
    tracker = LockoutTracker(max_failures=3, base_lockout_seconds=60, clock=clock)
    assert tracker.failure("192.0.2.1", "clinic") == []
    assert tracker.failure("192.0.2.1", "clinic") == []
    assert tracker.failure("192.0.2.1", "clinic") == ["client_ip", "user"]
    assert tracker.locked_for("192.0.2.1", "other") == 60
    assert tracker.locked_for("198.51.100.7", "clinic") == 60  # the user, from anywhere
    clock.now += 61
    assert tracker.locked_for("192.0.2.1", "clinic") == 0
    for _ in range(3):
        tracker.failure("192.0.2.1", "clinic")
    assert tracker.locked_for("192.0.2.1", "clinic") == 120  # the second lockout doubles
    for _ in range(20):
        clock.now += MAX_LOCKOUT_SECONDS
        for _ in range(3):
            tracker.failure("192.0.2.1", "clinic")
    assert tracker.locked_for("192.0.2.1", "clinic") == MAX_LOCKOUT_SECONDS
    clock.now += MAX_LOCKOUT_SECONDS + 1
    tracker.failure("192.0.2.9", "nurse")
    tracker.success("192.0.2.9", "nurse")
    tracker.failure("192.0.2.9", "nurse")
    tracker.failure("192.0.2.9", "nurse")
    assert tracker.locked_for("192.0.2.9", "nurse") == 0  # the success reset the count
    assert tracker.lockouts_total == 2 * 22
