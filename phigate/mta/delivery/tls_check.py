"""``phigate tls check DOMAIN``: what delivery would do there, checked live.

MX names (or the smarthost), the MTA-STS policy (mode, id, hosts), the TLSA records of
each host and their DNSSEC state, and for each host a live STARTTLS probe: does it offer
STARTTLS and REQUIRETLS, which TLS version, does the certificate verify for the host name
(WebPKI: system store plus ``[delivery] ca_file``), does it match the TLSA records, and the
policy a delivery would use. Nothing is sent: the probe says EHLO, STARTTLS, EHLO, QUIT.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import aiosmtplib

from phigate.config import DeliverySettings
from phigate.mta.delivery.dane import (
    DaneState,
    TlsaRecord,
    lookup_tlsa,
    make_validating_resolver,
    matches,
    peer_chain,
)
from phigate.mta.delivery.mta_sts import CachedPolicy, MtaSts, StsLookup
from phigate.mta.delivery.routing import Router, make_resolver
from phigate.mta.delivery.secure import Demands, hop_policy
from phigate.mta.delivery.tls_policy import TlsContexts, TlsLevel, tls_level_for


@dataclass
class HostCheck:
    name: str
    address: str | None
    port: int
    policy: str
    refusal: str | None
    tlsa_state: str
    tlsa: list[str]
    starttls: bool = False
    requiretls: bool = False
    tls_version: str | None = None
    cert_verified: bool = False
    dane_match: bool | None = None
    error: str | None = None


@dataclass
class DomainCheck:
    domain: str
    smarthost: bool
    mx: list[str]
    mta_sts: dict[str, Any]
    dnssec_resolver: bool
    hosts: list[HostCheck] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _MemoryCache:
    def __init__(self) -> None:
        self._policies: dict[str, CachedPolicy] = {}

    def get_sts_policy(self, domain: str) -> CachedPolicy | None:
        return self._policies.get(domain)

    def put_sts_policy(self, domain: str, cached: CachedPolicy) -> None:
        self._policies[domain] = cached

    def note_sts_refresh_failed(self, domain: str, now: datetime) -> None:
        return None


async def check_domain(settings: DeliverySettings, domain: str, *,
                       local_hostname: str = "localhost") -> DomainCheck:
    domain = domain.lower().rstrip(".")
    resolver = make_resolver(settings.dns_servers, timeout=settings.connect_timeout_seconds)
    validating = make_validating_resolver(settings.dnssec_resolver)
    contexts = TlsContexts(settings.ca_file)
    sts = StsLookup()
    if settings.mta_sts and not settings.smarthost:
        sts = await MtaSts(resolver, _MemoryCache(), contexts.for_level(TlsLevel.VERIFY),
                           port=settings.mta_sts_port).lookup(domain)
    sts_view: dict[str, Any] = {"mode": None, "id": None, "mx": [], "max_age": None,
                                "failure": str(sts.failure) if sts.failure else None}
    if sts.policy is not None:
        sts_view.update(mode=str(sts.policy.mode), id=sts.policy.policy_id,
                        mx=list(sts.policy.mx), max_age=sts.policy.max_age)
    report = DomainCheck(domain, bool(settings.smarthost), [], sts_view, validating is not None)
    try:
        hops = await Router(settings, resolver=resolver).next_hops(domain)
    except Exception as error:  # a routing failure is the answer, not a crash
        report.error = str(error) or type(error).__name__
        return report
    base = tls_level_for(settings, domain, phi=False)
    for hop in hops:
        report.mx.append(hop.name)
        tlsa = (await lookup_tlsa(validating, hop.name) if not hop.smarthost
                else await lookup_tlsa(None, hop.name))
        decided = hop_policy(hop.name, Demands(base), sts if not hop.smarthost else StsLookup(),
                             tlsa)
        check = HostCheck(hop.name, hop.addresses[0] if hop.addresses else None, hop.port,
                          str(decided.policy), decided.refusal, str(tlsa.state),
                          [str(r) for r in tlsa.records])
        if check.address is not None:
            records = tlsa.records if tlsa.state is DaneState.SECURE else ()
            await _probe(check, records, contexts, local_hostname,
                         settings.connect_timeout_seconds)
        report.hosts.append(check)
    return report


async def _probe(check: HostCheck, records: tuple[TlsaRecord, ...], contexts: TlsContexts,
                 local_hostname: str, timeout: float) -> None:
    chain: list[bytes] = []
    try:
        chain = await _starttls(check, contexts.for_level(TlsLevel.REQUIRED), local_hostname,
                                timeout)
        if check.starttls:
            try:
                await _starttls(check, contexts.for_level(TlsLevel.VERIFY), local_hostname,
                                timeout)
                check.cert_verified = True
            except ssl.SSLCertVerificationError as error:
                check.error = f"certificate not verified: {error.verify_message}"
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        check.error = f"{type(error).__name__}: {error}"[:200]
    if records:
        check.dane_match = bool(chain) and matches(records, chain, check.name)


async def _starttls(check: HostCheck, context: ssl.SSLContext, local_hostname: str,
                    timeout: float) -> list[bytes]:
    assert check.address is not None  # noqa: S101 - checked by the caller
    smtp = aiosmtplib.SMTP(hostname=check.address, port=check.port, start_tls=False,
                           local_hostname=local_hostname, timeout=timeout)
    await smtp.connect()
    try:
        await smtp.ehlo()
        check.starttls = smtp.supports_extension("starttls")
        if not check.starttls:
            return []
        await smtp.starttls(server_hostname=check.name, tls_context=context)
        await smtp.ehlo()
        check.requiretls = smtp.supports_extension("requiretls")
        ssl_object = smtp.get_transport_info("ssl_object")
        check.tls_version = ssl_object.version() if ssl_object is not None else None
        return peer_chain(ssl_object) if ssl_object is not None else []
    finally:
        try:
            await asyncio.wait_for(smtp.quit(), 5)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            smtp.close()


def render_text(report: DomainCheck) -> str:
    lines = [f"domain: {report.domain}" + (" (via smarthost)" if report.smarthost else "")]
    sts = report.mta_sts
    if sts["mode"]:
        lines.append(f"MTA-STS: mode {sts['mode']}, id {sts['id']}, mx {', '.join(sts['mx'])}, "
                     f"max_age {sts['max_age']}")
    else:
        lines.append("MTA-STS: none" + (f" (announced, but {sts['failure']})"
                                        if sts["failure"] else ""))
    lines.append("DNSSEC: " + ("validating resolver configured" if report.dnssec_resolver
                               else "no validating resolver ([delivery] dnssec_resolver): "
                               "DANE is off"))
    if report.error:
        lines.append(f"routing: {report.error}")
    for host in report.hosts:
        lines.append(f"mx {host.name} [{host.address}]:{host.port}: policy {host.policy}")
        if host.refusal:
            lines.append(f"  never used: {host.refusal}")
        lines.append(f"  TLSA ({host.tlsa_state}): " + (", ".join(host.tlsa) or "none"))
        lines.append(f"  STARTTLS: {'yes' if host.starttls else 'no'}"
                     + (f", {host.tls_version}" if host.tls_version else "")
                     + f"; REQUIRETLS: {'yes' if host.requiretls else 'no'}")
        lines.append(f"  certificate verifies for {host.name}: "
                     f"{'yes' if host.cert_verified else 'no'}"
                     + ("" if host.dane_match is None
                        else f"; matches TLSA: {'yes' if host.dane_match else 'no'}"))
        if host.error:
            lines.append(f"  error: {host.error}")
    return "\n".join(lines)
