"""DANE for SMTP (RFC 7672): TLSA records of ``_25._tcp.<mx>`` and matching certificates.

TLSA records are asked of ``[delivery] dnssec_resolver`` only (a validating resolver such
as a local Unbound), with the DO bit set, and trusted only when that resolver says the
answer is authentic (the AD bit). An answer without AD is as good as no answer: an
attacker who can spoof plain DNS could forge it (RFC 7672 2.2). Without a configured
validating resolver DANE is off (``check-config`` says so).

Matching (RFC 7672 3.1):

- DANE-EE (usage 3): the server's own certificate (selector 0) or public key (selector 1)
  matches; name and expiry are not checked (3.1.1): a self-signed certificate is fine.
- DANE-TA (usage 2): a certificate the server presents in its chain matches, and the
  server's certificate chains to it and is valid for the MX name (3.1.2).
- PKIX usages 0 and 1 are unusable for SMTP (3.1.3) and ignored.

A TLSA RRset with records but none usable is treated as no TLSA (3.1.3 / 2.2). Records
present and usable but none matching: the host fails (defer); never plaintext.
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.rdatatype
import dns.resolver
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.verification import (
    Criticality,
    DNSName,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from phigate.config import HostPort

USAGE_DANE_TA = 2
USAGE_DANE_EE = 3


class DaneState(StrEnum):
    #: No validating resolver configured: DANE is off.
    OFF = "off"
    #: Validated TLSA records: DANE applies.
    SECURE = "secure"
    #: The TLSA answer (or its absence) was not authenticated: DANE does not apply.
    INSECURE = "insecure"
    #: Authenticated denial, or only unusable records: DANE does not apply.
    NONE = "none"
    #: The validating resolver failed (SERVFAIL: bogus or unreachable): the host is unusable.
    FAILED = "failed"


@dataclass(frozen=True)
class TlsaRecord:
    usage: int
    selector: int
    mtype: int
    data: bytes

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()}"

    @property
    def usable(self) -> bool:
        return (self.usage in (USAGE_DANE_TA, USAGE_DANE_EE) and self.selector in (0, 1)
                and self.mtype in (0, 1, 2))


@dataclass(frozen=True)
class TlsaLookup:
    state: DaneState
    records: tuple[TlsaRecord, ...] = ()


def make_validating_resolver(server: str, *, timeout: float = 10.0
                             ) -> dns.asyncresolver.Resolver | None:
    """A resolver for ``[delivery] dnssec_resolver`` (``HOST:PORT``), or None when unset."""
    if not server:
        return None
    hostport = HostPort.parse(server if ":" in server else f"{server}:53",
                              key="[delivery] dnssec_resolver")
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [hostport.host]
    resolver.port = hostport.port
    resolver.lifetime = timeout
    # Answers (with their flags) are kept for their TTL: one TLSA query per MX and TTL.
    resolver.cache = dns.resolver.LRUCache(10_000)
    # DO asks the resolver to validate and report AD; no CD: it must not hand us bogus data.
    resolver.use_edns(0, dns.flags.DO, 1232)
    return resolver


async def lookup_tlsa(resolver: dns.asyncresolver.Resolver | None, host: str,
                      port: int = 25) -> TlsaLookup:
    """The TLSA records of ``host`` that DANE may use (see the module doc)."""
    if resolver is None:
        return TlsaLookup(DaneState.OFF)
    name = f"_{port}._tcp.{host.rstrip('.')}"
    try:
        answer = await resolver.resolve(name, "TLSA", raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN as error:
        responses = list(error.responses().values())
        authentic = bool(responses) and all(_authentic(r) for r in responses)
        return TlsaLookup(DaneState.NONE if authentic else DaneState.INSECURE)
    except (dns.resolver.NoNameservers, dns.exception.Timeout):
        return TlsaLookup(DaneState.FAILED)
    if answer.response is None or not _authentic(answer.response):
        return TlsaLookup(DaneState.INSECURE)
    records = tuple(TlsaRecord(r.usage, r.selector, r.mtype, bytes(r.cert))
                    for r in (answer.rrset or []))
    usable = tuple(r for r in records if r.usable)
    return TlsaLookup(DaneState.SECURE if usable else DaneState.NONE, usable)


def _authentic(response: object) -> bool:
    flags = getattr(response, "flags", 0)
    return bool(flags & dns.flags.AD)


def peer_chain(ssl_object: ssl.SSLObject) -> list[bytes]:
    """The certificates the server presented (DER, its own first)."""
    inner = getattr(ssl_object, "_sslobj", None)
    chain = getattr(inner, "get_unverified_chain", None)
    if chain is not None:
        certificates = chain() or []
        return [c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
                for c in certificates]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _digest(record: TlsaRecord, certificate: x509.Certificate) -> bool:
    if record.selector == 0:
        selected = certificate.public_bytes(Encoding.DER)
    else:
        selected = certificate.public_key().public_bytes(Encoding.DER,
                                                         PublicFormat.SubjectPublicKeyInfo)
    if record.mtype == 1:
        selected = hashlib.sha256(selected).digest()
    elif record.mtype == 2:
        selected = hashlib.sha512(selected).digest()
    return selected == record.data


def matches(records: tuple[TlsaRecord, ...], chain_der: list[bytes], host: str, *,
            now: datetime | None = None) -> bool:
    """Whether the presented chain satisfies one of ``records`` for MX ``host``."""
    if not chain_der:
        return False
    try:
        chain = [x509.load_der_x509_certificate(der) for der in chain_der]
    except ValueError:
        return False
    leaf = chain[0]
    for record in records:
        if record.usage == USAGE_DANE_EE and _digest(record, leaf):
            return True
    for record in records:
        if record.usage != USAGE_DANE_TA:
            continue
        for anchor in chain[1:] or chain:
            if _digest(record, anchor) and _chains_to(leaf, chain[1:], anchor, host, now):
                return True
    return False


def _chains_to(leaf: x509.Certificate, intermediates: list[x509.Certificate],
               anchor: x509.Certificate, host: str, now: datetime | None) -> bool:
    # Chain and name as WebPKI checks them, but the leaf's extensions as any TLS client
    # would take them: a DANE-TA anchor is often a private CA, not bound to CA/B rules.
    leaf_policy = ExtensionPolicy.permit_all().require_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    try:
        verifier = (PolicyBuilder().store(Store([anchor])).time(now or datetime.now(UTC))
                    .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                                        ee_policy=leaf_policy)
                    .build_server_verifier(DNSName(host.rstrip("."))))
        verifier.verify(leaf, [c for c in intermediates if c != anchor])
    except (VerificationError, ValueError):
        return False
    return True
