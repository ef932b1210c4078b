"""MTA-STS (RFC 8461): discovery, verified fetch, parsing, the store cache and refresh."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import trustme
from helpers.dns_server import DnsServer
from helpers.net import free_port
from helpers.transport import StsHost, policy_text

from phigate.mta.delivery.mta_sts import (
    CachedPolicy,
    MtaSts,
    StoreStsCache,
    StsError,
    StsFailure,
    StsMode,
    mx_matches,
    parse_policy,
    parse_txt,
)
from phigate.mta.delivery.routing import make_resolver
from phigate.queue.transport_store import TransportStore

DOMAIN = "example.test"


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    server = DnsServer(free_port(socket.SOCK_DGRAM), {
        f"_mta-sts.{DOMAIN}": [("TXT", '"v=STSv1; id=20261202"')],
        f"mta-sts.{DOMAIN}": [("A", "127.0.0.1")],
    }).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sts_ca() -> trustme.CA:
    return trustme.CA()


def _sts(dns: DnsServer, store: TransportStore, ca: trustme.CA, port: int) -> MtaSts:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    resolver = make_resolver([dns.address], timeout=3)
    resolver.cache = None  # the tests change records between lookups
    return MtaSts(resolver, StoreStsCache(store), context, port=port)


def test_txt_record_parsing() -> None:
    assert parse_txt(["v=STSv1; id=abc123"]) == "abc123"
    assert parse_txt(["v=STSv1; id=abc123;"]) == "abc123"
    assert parse_txt(["v=STSv1; id=a", "v=STSv1; id=b"]) is None  # ambiguous: no policy
    assert parse_txt(["v=spf1 -all"]) is None
    assert parse_txt(["v=STSv1; id=not-alnum!"]) is None


def test_policy_parsing_and_mx_patterns() -> None:
    policy = parse_policy(policy_text("enforce", "mx1.example.test", "*.mail.example.test"),
                          "id1")
    assert policy.mode is StsMode.ENFORCE and policy.max_age == 86400
    assert policy.allows("mx1.example.test") and policy.allows("a.mail.example.test")
    assert not policy.allows("a.b.mail.example.test") and not policy.allows("evil.test")
    assert not mx_matches("*.example.test", "example.test")
    with pytest.raises(StsError) as error:
        parse_policy("version: STSv1\nmode: enforce\nmax_age: 10\n", "x")
    assert error.value.failure is StsFailure.INVALID
    with pytest.raises(StsError):
        parse_policy("version: STSv2\nmode: none\nmax_age: 10\n", "x")
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 999999999\n", "x").max_age \
        == 31_557_600


async def test_fetch_caches_policy_in_store(dns: DnsServer, transport_store: TransportStore,
                                            sts_ca: trustme.CA) -> None:
    port = free_port()
    async with StsHost(sts_ca, DOMAIN, port) as host:
        host.policy = policy_text("enforce", "mx1.example.test")
        sts = _sts(dns, transport_store, sts_ca, port)
        found = await sts.lookup(DOMAIN)
        again = await sts.lookup(DOMAIN)
        await sts.aclose()
    assert found.policy is not None and found.policy.mode is StsMode.ENFORCE
    assert found.policy.policy_id == "20261202" and found.policy.mx == ("mx1.example.test",)
    assert again.policy == found.policy
    assert host.fetches == 1  # the second lookup came from the cache
    stored = transport_store.get_sts(DOMAIN)
    assert stored is not None and stored.mode == "enforce"
    assert stored.expires_at - stored.fetched_at == timedelta(seconds=86400)


async def test_no_txt_record_means_no_policy(dns: DnsServer, transport_store: TransportStore,
                                             sts_ca: trustme.CA) -> None:
    sts = _sts(dns, transport_store, sts_ca, free_port())
    found = await sts.lookup("nopolicy.test")
    assert found.policy is None and found.failure is None


class _CountingCache(StoreStsCache):
    def __init__(self, store: TransportStore) -> None:
        super().__init__(store)
        self.reads = 0

    def get_sts_policy(self, domain: str) -> CachedPolicy | None:
        self.reads += 1
        return super().get_sts_policy(domain)


async def test_a_domain_without_policy_is_not_read_from_the_store_per_delivery(
        dns: DnsServer, transport_store: TransportStore, sts_ca: trustme.CA) -> None:
    port = free_port()
    sts = _sts(dns, transport_store, sts_ca, port)
    cache = sts.cache = _CountingCache(transport_store)
    for _ in range(3):
        assert (await sts.lookup("nopolicy.test")).policy is None
    assert cache.reads == 1
    # The TXT record is still asked every time: a policy published meanwhile is found.
    async with StsHost(sts_ca, DOMAIN, port) as host:
        host.policy = policy_text("enforce", "mx1.example.test")
        assert (await sts.lookup(DOMAIN)).policy is not None  # absent from the store: fetched
        found = await sts.lookup(DOMAIN)
        await sts.aclose()
    assert found.policy is not None and host.fetches == 1


async def test_untrusted_certificate_is_a_webpki_failure(
        dns: DnsServer, transport_store: TransportStore, sts_ca: trustme.CA) -> None:
    port = free_port()
    async with StsHost(trustme.CA(), DOMAIN, port) as host:  # a CA we do not trust
        host.policy = policy_text("enforce", "mx1.example.test")
        found = await _sts(dns, transport_store, sts_ca, port).lookup(DOMAIN)
    assert found.policy is None and found.failure is StsFailure.WEBPKI_INVALID


async def test_wrong_name_certificate_is_refused(
        dns: DnsServer, transport_store: TransportStore, sts_ca: trustme.CA) -> None:
    port = free_port()
    async with StsHost(sts_ca, DOMAIN, port, cert_name="elsewhere.test") as host:
        host.policy = policy_text("enforce", "mx1.example.test")
        found = await _sts(dns, transport_store, sts_ca, port).lookup(DOMAIN)
    assert found.policy is None and found.failure is StsFailure.WEBPKI_INVALID


async def test_redirects_are_not_followed(dns: DnsServer, transport_store: TransportStore,
                                          sts_ca: trustme.CA) -> None:
    port = free_port()
    async with StsHost(sts_ca, DOMAIN, port) as host:
        host.redirect_to = f"https://mta-sts.{DOMAIN}:{port}/other"
        found = await _sts(dns, transport_store, sts_ca, port).lookup(DOMAIN)
    assert found.policy is None and found.failure is StsFailure.FETCH_ERROR
    assert host.fetches == 1


async def test_oversized_or_wrong_type_policy_is_invalid(
        dns: DnsServer, transport_store: TransportStore, sts_ca: trustme.CA) -> None:
    port = free_port()
    async with StsHost(sts_ca, DOMAIN, port) as host:
        host.policy = policy_text("enforce", "mx1.example.test") + "x" * 70_000
        too_big = await _sts(dns, transport_store, sts_ca, port).lookup(DOMAIN)
        host.policy, host.content_type = policy_text("enforce", "mx.test"), "text/html"
        html = await _sts(dns, transport_store, sts_ca, port).lookup(DOMAIN)
    assert too_big.failure is StsFailure.INVALID and html.failure is StsFailure.INVALID


async def test_cached_enforce_policy_outlives_a_failed_refresh(
        dns: DnsServer, transport_store: TransportStore, sts_ca: trustme.CA) -> None:
    port = free_port()
    async with StsHost(sts_ca, DOMAIN, port) as host:
        host.policy = policy_text("enforce", "mx1.example.test", max_age=600)
        sts = _sts(dns, transport_store, sts_ca, port)
        first = await sts.lookup(DOMAIN)
        # The domain announces a new id, but the policy host now fails (an attacker
        # blocking it): the refresh fails and the cached enforce policy stays in force.
        dns.set(f"_mta-sts.{DOMAIN}", [("TXT", '"v=STSv1; id=changed"')])
        host.status = 503
        assert await sts.refresh(DOMAIN) is False
        later = await _sts(dns, transport_store, sts_ca, port).lookup(DOMAIN)
        await sts.aclose()
    assert first.policy is not None and later.policy == first.policy
    stored = transport_store.get_sts(DOMAIN)
    assert stored is not None and stored.refresh_failed_at is not None


async def test_changed_id_is_fetched_again(dns: DnsServer, transport_store: TransportStore,
                                           sts_ca: trustme.CA) -> None:
    port = free_port()
    async with StsHost(sts_ca, DOMAIN, port) as host:
        host.policy = policy_text("testing", "mx1.example.test")
        sts = _sts(dns, transport_store, sts_ca, port)
        await sts.lookup(DOMAIN)
        dns.set(f"_mta-sts.{DOMAIN}", [("TXT", '"v=STSv1; id=v2"')])
        host.policy = policy_text("enforce", "mx2.example.test")
        assert await sts.refresh(DOMAIN) is True
        now = await sts.lookup(DOMAIN)
        await sts.aclose()
    assert now.policy is not None and now.policy.policy_id == "v2"
    assert now.policy.mode is StsMode.ENFORCE and now.policy.mx == ("mx2.example.test",)


async def test_expired_cache_with_failed_fetch_means_no_policy(
        dns: DnsServer, transport_store: TransportStore, sts_ca: trustme.CA) -> None:
    port = free_port()
    async with StsHost(sts_ca, DOMAIN, port) as host:
        host.policy = policy_text("enforce", "mx1.example.test", max_age=60)
        sts = _sts(dns, transport_store, sts_ca, port)
        await sts.lookup(DOMAIN)
        sts.now = lambda: datetime.now(UTC) + timedelta(seconds=120)
        host.status = 404
        found = await sts.lookup(DOMAIN)
        await sts.aclose()
    assert found.policy is None and found.failure is StsFailure.FETCH_ERROR
