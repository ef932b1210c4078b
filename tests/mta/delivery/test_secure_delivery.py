"""Delivery under MTA-STS, DANE and REQUIRETLS, over real sockets.

DNS: a dnslib server on loopback; DANE's "validated" answers carry the AD bit the way a
validating resolver sets it (``DnsServer.secure``); the same code path against a real
Unbound over a signed zone is in test_dane.py and test_tls_check.py. MX hosts are
aiosmtpd sinks on 127.0.0.1 and 127.0.0.2 (one port: ``mx_port``), the MTA-STS policy host
an aiohttp server with a trustme certificate.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from helpers.dns_server import DnsServer
from helpers.net import free_port
from helpers.smtp_sink import SmtpSink
from helpers.transport import StsHost, policy_text, self_signed

from phigate.config import DeliverySettings
from phigate.mta.delivery.client import OutboundMessage, SmtpTransport
from phigate.mta.delivery.dane import make_validating_resolver
from phigate.mta.delivery.mta_sts import MtaSts, StoreStsCache
from phigate.mta.delivery.routing import make_resolver
from phigate.mta.delivery.security import DeliverySecurity
from phigate.mta.delivery.tlsrpt import TlsRptCounter
from phigate.queue.transport_store import TransportStore

DOMAIN = "example.test"
MX1, EVIL = "mx1.example.test", "evil.example.test"
BODY = b"From: c@practice.test\r\nTo: p@example.test\r\nSubject: hi\r\n\r\nhello\r\n"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def _context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    server = DnsServer(free_port(socket.SOCK_DGRAM), {
        DOMAIN: [("MX", f"5 {EVIL}."), ("MX", f"10 {MX1}.")],
        MX1: [("A", "127.0.0.1")], EVIL: [("A", "127.0.0.2")],
        f"mta-sts.{DOMAIN}": [("A", "127.0.0.1")],
    }).start()
    yield server
    server.stop()


class World:
    def __init__(self, dns: DnsServer, ca: trustme.CA, ca_file: Path,
                 store: TransportStore) -> None:
        self.dns, self.ca, self.ca_file, self.store = dns, ca, ca_file, store
        self.port = free_port()
        self.sts_port = free_port()
        self.sinks: list[SmtpSink] = []
        self.counter = TlsRptCounter()
        self.sessions: list[tuple[str, str]] = []

    def sink(self, address: str, tls: ssl.SSLContext | None, **kwargs: Any) -> SmtpSink:
        sink = SmtpSink(self.port, tls_context=tls, hostname=address, **kwargs).start()
        self.sinks.append(sink)
        return sink

    def announce(self, policy_id: str = "1") -> None:
        self.dns.set(f"_mta-sts.{DOMAIN}", [("TXT", f'"v=STSv1; id={policy_id}"')])

    def transport(self, **settings: Any) -> SmtpTransport:
        values: dict[str, Any] = {"dns_servers": [self.dns.address], "ca_file": str(self.ca_file),
                                  "mx_port": self.port, "mta_sts_port": self.sts_port,
                                  "connect_timeout_seconds": 5.0,
                                  "command_timeout_seconds": 5.0,
                                  "dnssec_resolver": self.dns.address}
        values.update(settings)
        delivery = DeliverySettings(**values)
        resolver = make_resolver(delivery.dns_servers, timeout=3)
        resolver.cache = None
        verify = ssl.create_default_context()
        self.ca.configure_trust(verify)
        security = DeliverySecurity(
            mta_sts=MtaSts(resolver, StoreStsCache(self.store), verify, port=self.sts_port),
            validating_resolver=make_validating_resolver(delivery.dnssec_resolver),
            counter=self.counter,
            observer=lambda policy, result: self.sessions.append((str(policy), result)))
        return SmtpTransport(delivery, local_hostname="relay.practice.test", security=security,
                             router=None)

    def stop(self) -> None:
        for sink in self.sinks:
            sink.stop()

    def failures(self) -> list[str]:
        return [key.result_type for day in self.counter.pending().values()
                for key in day if key.result_type]


@pytest.fixture
def world(dns: DnsServer, ca: trustme.CA, ca_file: Path,
          transport_store: TransportStore) -> Iterator[World]:
    w = World(dns, ca, ca_file, transport_store)
    yield w
    w.stop()


def _message(**kwargs: Any) -> OutboundMessage:
    values: dict[str, Any] = {"sender": "c@practice.test", "recipients": ["p@example.test"],
                              "domain": DOMAIN, "content": BODY}
    values.update(kwargs)
    return OutboundMessage(**values)


async def _deliver(transport: SmtpTransport, **kwargs: Any) -> Any:
    try:
        return await transport.deliver(_message(**kwargs))
    finally:
        await transport.aclose()


# -- MTA-STS ----------------------------------------------------------------------------


async def test_enforce_never_connects_to_an_mx_outside_the_policy(world: World) -> None:
    evil = world.sink("127.0.0.2", _context(world.ca, EVIL))  # a valid cert for its name
    good = world.sink("127.0.0.1", _context(world.ca, MX1))
    world.announce()
    async with StsHost(world.ca, DOMAIN, world.sts_port) as host:
        host.policy = policy_text("enforce", MX1)
        result = await _deliver(world.transport())
    assert result.outcomes[0].delivered and result.tls_policy == "mta-sts"
    assert len(good.messages) == 1 and result.tls.cert_verified
    assert evil.sessions == 0 and evil.commands == []  # preferred MX, never connected to


async def test_enforce_with_only_unlisted_mx_defers_without_connecting(world: World) -> None:
    world.dns.set(DOMAIN, [("MX", f"10 {EVIL}.")])
    evil = world.sink("127.0.0.2", _context(world.ca, EVIL))
    world.announce()
    async with StsHost(world.ca, DOMAIN, world.sts_port) as host:
        host.policy = policy_text("enforce", MX1)
        result = await _deliver(world.transport())
    outcome = result.outcomes[0]
    assert not outcome.delivered and not outcome.permanent and outcome.status == "4.7.5"
    assert "MTA-STS" in outcome.text and evil.sessions == 0
    assert world.failures() == ["validation-failure"]


async def test_enforce_certificate_that_does_not_match_defers(world: World) -> None:
    world.dns.set(DOMAIN, [("MX", f"10 {MX1}.")])
    sink = world.sink("127.0.0.1", _context(world.ca, "somewhere-else.test"))
    world.announce()
    async with StsHost(world.ca, DOMAIN, world.sts_port) as host:
        host.policy = policy_text("enforce", MX1)
        result = await _deliver(world.transport())
    outcome = result.outcomes[0]
    assert not outcome.delivered and not outcome.permanent and outcome.status == "4.7.5"
    assert sink.messages == []
    assert world.failures() == ["certificate-host-mismatch"]
    assert ("mta-sts", "certificate-host-mismatch") in world.sessions


async def test_cached_enforce_policy_outlives_a_failed_fetch(world: World) -> None:
    good = world.sink("127.0.0.1", _context(world.ca, MX1))
    evil = world.sink("127.0.0.2", _context(world.ca, EVIL))
    world.announce("1")
    async with StsHost(world.ca, DOMAIN, world.sts_port) as host:
        host.policy = policy_text("enforce", MX1)
        assert (await _deliver(world.transport())).outcomes[0].delivered
        # An attacker now answers DNS: only their MX, a new policy id, and the policy host
        # unreachable. A fresh transport (a restarted relay) still has the cached policy.
        world.dns.set(DOMAIN, [("MX", f"10 {EVIL}.")])
        world.announce("2")
        host.status = 503
        result = await _deliver(world.transport())
    assert not result.outcomes[0].delivered and result.outcomes[0].status == "4.7.5"
    assert evil.sessions == 0 and len(good.messages) == 1


async def test_testing_mode_delivers_and_counts_the_failure(world: World) -> None:
    world.dns.set(DOMAIN, [("MX", f"10 {MX1}.")])
    sink = world.sink("127.0.0.1", _context(world.ca, "somewhere-else.test"))
    world.announce()
    async with StsHost(world.ca, DOMAIN, world.sts_port) as host:
        host.policy = policy_text("testing", MX1)
        result = await _deliver(world.transport())
    assert result.outcomes[0].delivered and len(sink.messages) == 1
    assert result.tls_policy == "opportunistic" and not result.tls.cert_verified
    assert world.failures() == ["certificate-host-mismatch"]


# -- DANE ---------------------------------------------------------------------------------


async def test_dane_match_delivers_with_a_self_signed_certificate(world: World,
                                                                  tmp_path: Path) -> None:
    world.dns.set(DOMAIN, [("MX", f"10 {MX1}.")])
    cert = self_signed(MX1, str(tmp_path))
    world.dns.set(f"_25._tcp.{MX1}", [("TLSA", cert.tlsa())])
    world.dns.secure(f"_25._tcp.{MX1}")
    sink = world.sink("127.0.0.1", cert.context)
    result = await _deliver(world.transport(), phi=True)  # PHI: needs verified TLS
    assert result.outcomes[0].delivered and len(sink.messages) == 1
    assert result.tls_policy == "dane" and result.tls.cert_verified
    assert sink.messages[0].tls_version is not None


async def test_dane_takes_precedence_over_mta_sts(world: World, tmp_path: Path) -> None:
    world.dns.set(DOMAIN, [("MX", f"10 {MX1}.")])
    cert = self_signed(MX1, str(tmp_path))  # would fail MTA-STS's WebPKI check
    world.dns.set(f"_25._tcp.{MX1}", [("TLSA", cert.tlsa())])
    world.dns.secure(f"_25._tcp.{MX1}")
    world.sink("127.0.0.1", cert.context)
    world.announce()
    async with StsHost(world.ca, DOMAIN, world.sts_port) as host:
        host.policy = policy_text("enforce", MX1)
        result = await _deliver(world.transport())
    assert result.outcomes[0].delivered and result.tls_policy == "dane"


async def test_dane_mismatch_defers_and_never_falls_back(world: World,
                                                         tmp_path: Path) -> None:
    world.dns.set(DOMAIN, [("MX", f"10 {MX1}.")])
    other = self_signed("other", str(tmp_path))
    world.dns.set(f"_25._tcp.{MX1}", [("TLSA", other.tlsa())])
    world.dns.secure(f"_25._tcp.{MX1}")
    sink = world.sink("127.0.0.1", self_signed(MX1, str(tmp_path)).context)
    result = await _deliver(world.transport())
    outcome = result.outcomes[0]
    assert not outcome.delivered and not outcome.permanent and outcome.status == "4.7.5"
    assert "TLSA" in outcome.text and sink.messages == []
    assert ("dane", "validation-failure") in world.sessions
    assert world.failures() == ["validation-failure"]


async def test_dane_host_without_starttls_gets_no_plaintext(world: World,
                                                            tmp_path: Path) -> None:
    world.dns.set(DOMAIN, [("MX", f"10 {MX1}.")])
    world.dns.set(f"_25._tcp.{MX1}", [("TLSA", self_signed(MX1, str(tmp_path)).tlsa())])
    world.dns.secure(f"_25._tcp.{MX1}")
    sink = world.sink("127.0.0.1", None)  # withholds STARTTLS
    result = await _deliver(world.transport())
    assert not result.outcomes[0].delivered and result.outcomes[0].status == "4.7.5"
    assert sink.messages == [] and ("MAIL", "") not in sink.commands
    assert world.failures() == ["starttls-not-supported"]


async def test_unvalidated_tlsa_answer_is_not_trusted(world: World, tmp_path: Path) -> None:
    world.dns.set(DOMAIN, [("MX", f"10 {MX1}.")])
    cert = self_signed(MX1, str(tmp_path))
    world.dns.set(f"_25._tcp.{MX1}", [("TLSA", cert.tlsa())])  # no AD bit
    sink = world.sink("127.0.0.1", cert.context)
    phi = await _deliver(world.transport(), phi=True)
    assert not phi.outcomes[0].delivered and phi.tls_policy == "verify"  # not "dane"
    plain = await _deliver(world.transport())
    assert plain.outcomes[0].delivered and plain.tls_policy == "opportunistic"
    assert len(sink.messages) == 1


async def test_dane_off_without_a_validating_resolver(world: World, tmp_path: Path) -> None:
    world.dns.set(DOMAIN, [("MX", f"10 {MX1}.")])
    cert = self_signed(MX1, str(tmp_path))
    world.dns.set(f"_25._tcp.{MX1}", [("TLSA", cert.tlsa())])
    world.dns.secure(f"_25._tcp.{MX1}")
    world.sink("127.0.0.1", cert.context)
    result = await _deliver(world.transport(dnssec_resolver=""))
    assert result.tls_policy == "opportunistic"
    assert ("_25._tcp.mx1.example.test", "TLSA") not in world.dns.queries


# -- REQUIRETLS and TLS-Required: No -------------------------------------------------------


async def test_requiretls_is_refused_by_a_hop_without_it(world: World) -> None:
    world.dns.set(DOMAIN, [("MX", f"10 {MX1}.")])
    sink = world.sink("127.0.0.1", _context(world.ca, MX1))  # verified TLS, no REQUIRETLS
    result = await _deliver(world.transport(), require_tls=True)
    outcome = result.outcomes[0]
    assert not outcome.delivered and outcome.permanent and outcome.status == "5.7.30"
    assert sink.messages == []


async def test_requiretls_is_delivered_through_a_hop_that_offers_it(world: World) -> None:
    world.dns.set(DOMAIN, [("MX", f"10 {MX1}.")])
    sink = world.sink("127.0.0.1", _context(world.ca, MX1), requiretls=True)
    result = await _deliver(world.transport(), require_tls=True)
    assert result.outcomes[0].delivered and result.tls.cert_verified
    assert "REQUIRETLS" in sink.messages[0].mail_options  # the flag is passed on


async def test_requiretls_needs_a_verified_certificate(world: World) -> None:
    world.dns.set(DOMAIN, [("MX", f"10 {MX1}.")])
    sink = world.sink("127.0.0.1", _context(world.ca, "elsewhere.test"), requiretls=True)
    result = await _deliver(world.transport(), require_tls=True)
    assert not result.outcomes[0].delivered and sink.messages == []


async def test_tls_required_no_is_honoured_only_without_phi(world: World,
                                                            tmp_path: Path) -> None:
    world.dns.set(DOMAIN, [("MX", f"10 {MX1}.")])
    world.dns.set(f"_25._tcp.{MX1}", [("TLSA", self_signed("x", str(tmp_path)).tlsa())])
    world.dns.secure(f"_25._tcp.{MX1}")
    sink = world.sink("127.0.0.1", self_signed(MX1, str(tmp_path)).context)
    relaxed = await _deliver(world.transport(), tls_optional=True)
    assert relaxed.outcomes[0].delivered and relaxed.tls_policy == "opportunistic"
    phi = await _deliver(world.transport(), tls_optional=True, phi=True)
    assert not phi.outcomes[0].delivered and phi.tls_policy == "dane"
    assert len(sink.messages) == 1


async def test_phi_asks_for_requiretls_where_a_verified_hop_offers_it(world: World) -> None:
    world.dns.set(DOMAIN, [("MX", f"10 {MX1}.")])
    sink = world.sink("127.0.0.1", _context(world.ca, MX1), requiretls=True)
    phi = await _deliver(world.transport(), phi=True)
    plain = await _deliver(world.transport())
    assert phi.outcomes[0].delivered and plain.outcomes[0].delivered
    first, second = sink.messages
    assert "REQUIRETLS" in first.mail_options and "REQUIRETLS" not in second.mail_options
