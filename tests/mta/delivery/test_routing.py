"""MX routing against a real DNS server on loopback."""

from __future__ import annotations

import random

import pytest

from phigate.config import DeliverySettings
from phigate.mta.delivery.outcomes import DeliveryError, NullMxError
from phigate.mta.delivery.routing import Router, make_resolver


def router(dns, **settings: object) -> Router:
    return Router(DeliverySettings(dns_servers=[dns.address], connect_timeout_seconds=2.0,
                                   **settings), rng=random.Random(7))  # type: ignore[arg-type]


async def test_mx_hosts_by_preference_with_their_addresses(dns) -> None:
    dns.set("example.test", [("MX", "20 backup.example.test."), ("MX", "10 mx1.example.test.")])
    dns.set("mx1.example.test", [("A", "127.0.0.1"), ("AAAA", "::1")])
    dns.set("backup.example.test", [("A", "127.0.0.9")])

    hops = await router(dns, mx_port=2525).next_hops("example.test")

    assert [(h.name, h.addresses, h.port) for h in hops] == [
        ("mx1.example.test", ("127.0.0.1", "::1"), 2525),
        ("backup.example.test", ("127.0.0.9",), 2525),
    ]


async def test_equal_preference_is_shuffled_but_kept_ahead(dns) -> None:
    dns.set("example.test", [("MX", "10 a.example.test."), ("MX", "10 b.example.test."),
                             ("MX", "10 c.example.test."), ("MX", "50 z.example.test.")])
    for name in "abcz":
        dns.set(f"{name}.example.test", [("A", "127.0.0.1")])
    orders = set()
    for seed in range(12):
        hops = await Router(DeliverySettings(dns_servers=[dns.address]),
                            rng=random.Random(seed)).next_hops("example.test")
        names = [h.name for h in hops]
        assert names[-1] == "z.example.test"
        orders.add(tuple(names[:3]))
    assert len(orders) > 1


async def test_no_mx_falls_back_to_the_domain_address(dns) -> None:
    dns.set("plain.test", [("A", "127.0.0.5")])
    [hop] = await router(dns).next_hops("plain.test")
    assert (hop.name, hop.addresses) == ("plain.test", ("127.0.0.5",))


async def test_null_mx_is_permanent(dns) -> None:
    dns.set("nomail.test", [("MX", "0 .")])
    with pytest.raises(NullMxError) as caught:
        await router(dns).next_hops("nomail.test")
    assert caught.value.permanent and caught.value.code == 556


async def test_nonexistent_domain_is_permanent(dns) -> None:
    with pytest.raises(DeliveryError) as caught:
        await router(dns).next_hops("does-not-exist.test")
    assert caught.value.permanent and "5.1.2" in caught.value.text


async def test_servfail_and_unresolvable_mx_are_temporary(dns) -> None:
    dns.fail("broken.test")
    with pytest.raises(DeliveryError) as caught:
        await router(dns).next_hops("broken.test")
    assert not caught.value.permanent

    dns.set("dangling.test", [("MX", "10 gone.dangling.test.")])
    with pytest.raises(DeliveryError) as caught:
        await router(dns).next_hops("dangling.test")
    assert not caught.value.permanent


async def test_smarthost_bypasses_mx(dns) -> None:
    dns.set("relay.partner.test", [("A", "127.0.0.7")])
    [hop] = await router(dns, smarthost="relay.partner.test:587").next_hops("anything.test")
    assert (hop.name, hop.addresses, hop.port, hop.smarthost) == (
        "relay.partner.test", ("127.0.0.7",), 587, True)
    assert not any(name == "anything.test" for name, _ in dns.queries)


def test_resolver_takes_host_port_and_bare_addresses() -> None:
    resolver = make_resolver(["127.0.0.1:5353", "192.0.2.1", "[::1]:53", "2001:db8::1"])
    assert [(n.address, n.port) for n in resolver.nameservers] == [  # type: ignore[union-attr]
        ("127.0.0.1", 5353), ("192.0.2.1", 53), ("::1", 53), ("2001:db8::1", 53)]
