"""The null MX check at RCPT: one query per domain and TTL, never a stall for a known domain."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers.dns_server import DnsServer
from helpers.net import free_port

from phigate.policy.null_mx import NullMxChecker, make_sync_resolver


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    server = DnsServer(free_port(), {
        "nullmx.test": [("MX", "0 .")],
        "mail.test": [("MX", "10 mx.mail.test.")],
        "nomx.test": [("A", "127.0.0.1")],
    }).start()
    yield server
    server.stop()


@pytest.fixture
def black_hole() -> Iterator[socket.socket]:
    """A 'resolver' that never answers: what a firewalled or dead DNS server looks like."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def _queries(sock: socket.socket) -> int:
    sock.setblocking(False)
    count = 0
    try:
        while True:
            sock.recv(512)
            count += 1
    except BlockingIOError:
        return count


def test_answers_and_negative_answers_are_cached(dns: DnsServer) -> None:
    checker = NullMxChecker(make_sync_resolver([dns.address], timeout=2))
    for _ in range(3):
        assert checker.has_null_mx("nullmx.test") is True
        assert checker.has_null_mx("mail.test") is False
        assert checker.has_null_mx("nomx.test") is False  # NOERROR, no MX
        assert checker.has_null_mx("unknown.test") is False  # NXDOMAIN
    assert sorted(name for name, _ in dns.queries) == [
        "mail.test", "nomx.test", "nullmx.test", "unknown.test"]


def test_concurrent_lookups_of_one_domain_share_one_query(black_hole: socket.socket) -> None:
    port = black_hole.getsockname()[1]
    checker = NullMxChecker(make_sync_resolver([f"127.0.0.1:{port}"], timeout=0.5))
    started = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(checker.has_null_mx, ["patients.example"] * 6))
    assert answers == [False] * 6  # fail-open
    assert time.monotonic() - started < 2  # one timeout, not six in turn
    assert checker.has_null_mx("patients.example") is False  # the failure is cached
    assert _queries(black_hole) == 1


def test_expired_answer_is_used_while_one_refresh_runs(dns: DnsServer) -> None:
    clock = FakeClock()
    checker = NullMxChecker(make_sync_resolver([dns.address], timeout=2), clock=clock)
    assert checker.has_null_mx("nullmx.test") is True
    dns.set("nullmx.test", [("MX", "10 mx.nullmx.test.")])  # the domain starts taking mail
    clock.now += 3601  # past any TTL
    assert checker.has_null_mx("nullmx.test") is True  # stale, answered at once
    deadline = time.monotonic() + 5
    while checker.has_null_mx("nullmx.test") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert checker.has_null_mx("nullmx.test") is False  # refreshed in the background
    assert [name for name, _ in dns.queries].count("nullmx.test") == 2
    for thread in [t for t in threading.enumerate() if t.name == "null-mx-refresh"]:
        thread.join(timeout=5)  # the refresher ends once it has answered
        assert not thread.is_alive()


def test_cache_is_bounded(dns: DnsServer) -> None:
    checker = NullMxChecker(make_sync_resolver([dns.address], timeout=2), cache_size=2)
    for domain in ("nullmx.test", "mail.test", "nomx.test", "nullmx.test"):
        checker.has_null_mx(domain)
    assert [name for name, _ in dns.queries].count("nullmx.test") == 2
    assert len(checker._cache) == 2
