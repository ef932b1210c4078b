"""DANE (RFC 7672): TLSA lookups trusted only with the AD bit, and certificate matching."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from helpers.dns_server import DnsServer
from helpers.net import free_port
from helpers.transport import self_signed, ta_tlsa

from phigate.mta.delivery.dane import (
    DaneState,
    TlsaRecord,
    lookup_tlsa,
    make_validating_resolver,
    matches,
)

MX = "mx1.example.test"


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    server = DnsServer(free_port(socket.SOCK_DGRAM)).start()
    yield server
    server.stop()


def _record(text: str) -> TlsaRecord:
    usage, selector, mtype, data = text.split()
    return TlsaRecord(int(usage), int(selector), int(mtype), bytes.fromhex(data))


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


async def test_authentic_tlsa_records_are_used(dns: DnsServer, tmp_path: Path) -> None:
    cert = self_signed(MX, str(tmp_path))
    dns.set(f"_25._tcp.{MX}", [("TLSA", cert.tlsa()), ("TLSA", "0 0 1 " + "00" * 32)])
    dns.secure(f"_25._tcp.{MX}")
    found = await lookup_tlsa(make_validating_resolver(dns.address), MX)
    assert found.state is DaneState.SECURE
    assert [str(r) for r in found.records] == [cert.tlsa().lower()]  # PKIX-TA ignored


async def test_unvalidated_answer_is_not_trusted(dns: DnsServer, tmp_path: Path) -> None:
    cert = self_signed(MX, str(tmp_path))
    dns.set(f"_25._tcp.{MX}", [("TLSA", cert.tlsa())])  # no AD bit
    found = await lookup_tlsa(make_validating_resolver(dns.address), MX)
    assert found.state is DaneState.INSECURE and found.records == ()


async def test_no_resolver_means_dane_off_and_servfail_means_failed(dns: DnsServer) -> None:
    assert (await lookup_tlsa(None, MX)).state is DaneState.OFF
    dns.fail(f"_25._tcp.{MX}")
    assert (await lookup_tlsa(make_validating_resolver(dns.address, timeout=2), MX)).state \
        is DaneState.FAILED


async def test_authenticated_denial_is_none(dns: DnsServer) -> None:
    dns.secure(f"_25._tcp.{MX}")  # NXDOMAIN with AD: a proven absence
    assert (await lookup_tlsa(make_validating_resolver(dns.address), MX)).state \
        is DaneState.NONE
    insecure = await lookup_tlsa(make_validating_resolver(dns.address), "other.test")
    assert insecure.state is DaneState.INSECURE


def test_dane_ee_ignores_name_and_issuer(tmp_path: Path) -> None:
    cert = self_signed("some-other-name.test", str(tmp_path))
    assert matches((_record(cert.tlsa(1, 1)),), [cert.cert_der], MX)
    assert matches((_record(cert.tlsa(0, 1)),), [cert.cert_der], MX)
    assert matches((_record(cert.tlsa(1, 0)),), [cert.cert_der], MX)
    other = self_signed(MX, str(tmp_path))
    assert not matches((_record(other.tlsa()),), [cert.cert_der], MX)
    assert not matches((_record(cert.tlsa()),), [], MX)


def test_dane_ta_needs_the_chain_and_the_name() -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert(MX)
    chain = [_der(leaf.cert_chain_pems[0].bytes()), _der(ca.cert_pem.bytes())]
    record = _record(ta_tlsa(ca))
    assert matches((record,), chain, MX)
    assert matches((_record(ta_tlsa(ca, selector=0)),), chain, MX)
    assert not matches((record,), chain, "mx2.example.test")  # name checked for DANE-TA
    assert not matches((_record(ta_tlsa(trustme.CA())),), chain, MX)
    wrong = trustme.CA().issue_cert(MX)  # same name, another CA, TA cert appended anyway
    assert not matches((record,), [_der(wrong.cert_chain_pems[0].bytes()), chain[1]], MX)


# -- real DNSSEC validation: Unbound over a zone signed with ldns-signzone ------------------


async def test_real_validation_with_unbound(tmp_path: Path) -> None:
    from helpers.unbound import ValidatingResolver, require_unbound

    require_unbound()
    cert = self_signed(MX, str(tmp_path))
    signed = {"example.test": {f"_25._tcp.{MX}": [("TLSA", cert.tlsa())],
                               MX: [("A", "127.0.0.1")],
                               "_25._tcp.mx2.example.test": [("TLSA", cert.tlsa())]}}
    unsigned = {"plain.test": {"_25._tcp.mx.plain.test": [("TLSA", cert.tlsa())]}}
    bogus = {"_25._tcp.mx2.example.test": [("TLSA", "3 1 1 " + "ab" * 32)]}
    with ValidatingResolver(tmp_path, signed=signed, unsigned=unsigned, bogus=bogus) as ub:
        resolver = make_validating_resolver(ub.address, timeout=3)
        good = await lookup_tlsa(resolver, MX)
        absent = await lookup_tlsa(resolver, "nothing.example.test")
        insecure = await lookup_tlsa(resolver, "mx.plain.test")
        forged = await lookup_tlsa(resolver, "mx2.example.test")
    assert good.state is DaneState.SECURE and [str(r) for r in good.records] == [
        cert.tlsa().lower()]
    assert absent.state is DaneState.NONE  # NSEC-proven absence
    assert insecure.state is DaneState.INSECURE  # real records, but no chain of trust
    assert forged.state is DaneState.FAILED  # signature does not match: bogus, SERVFAIL
