"""``check-config --dns``: what DNS publishes for this installation, checked against it.

SPF must allow the outbound addresses, each DKIM selector must publish our public key,
DMARC must exist and align, the outbound addresses need a PTR that resolves back
(forward-confirmed reverse DNS), and MTA-STS / TLS-RPT records, where published, must parse.
These are the bulk-sender rules of Gmail, Yahoo and Microsoft (2024-2025).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from phigate.checks.findings import Finding, error, warning
from phigate.checks.lookup import Dns, LookupFailed
from phigate.checks.spf import SpfResult, check_host, spf_record
from phigate.config import Settings
from phigate.mta.delivery.dkim import dns_record


def dns_findings(settings: Settings, dns: Dns, addresses: list[str] | None = None) -> list[Finding]:
    """Every DNS finding; ``addresses`` are the outbound IPs (default: [server] hostname's)."""
    findings: list[Finding] = []
    domains = settings.dkim.domains or [settings.server.domain]
    steps: list[tuple[str, Callable[[], Iterator[Finding]]]] = [
        ("outbound addresses", lambda: _address_findings(settings, dns, addresses)),
    ]
    for domain in domains:
        steps += [(f"DKIM of {domain}", partial(dkim_findings, settings, dns, domain)),
                  (f"DMARC of {domain}", partial(dmarc_findings, settings, dns, domain)),
                  (f"MTA-STS of {domain}", partial(mta_sts_findings, dns, domain))]
    for what, step in steps:
        try:
            findings.extend(step())
        except LookupFailed as failure:
            findings.append(warning(what, f"DNS did not answer ({failure})",
                                    "check [delivery] dns_servers and retry"))
    return findings


def _address_findings(settings: Settings, dns: Dns,
                      addresses: list[str] | None) -> Iterator[Finding]:
    hostname = settings.server.hostname
    if addresses is None:
        addresses = dns.addresses(hostname)
        if not addresses:
            yield error(hostname, "this host's name has no A/AAAA record",
                        f"publish {hostname}. A <public address>, or pass --ip")
            return
    envelope_domain = settings.feedback.bounce_domain or settings.server.domain
    yield from spf_findings(settings, dns, envelope_domain, addresses)
    if settings.delivery.smarthost:
        return  # the smarthost's addresses face the Internet, not ours
    for address in addresses:
        yield from ptr_findings(dns, address, hostname)


def spf_findings(settings: Settings, dns: Dns, domain: str,
                 addresses: list[str]) -> Iterator[Finding]:
    record = spf_record(dns, domain)
    if record is None:
        yield error(domain, "no SPF record",
                    f'publish {domain}. TXT "v=spf1 a:{settings.server.hostname} -all"')
        return
    if not record:
        yield error(domain, "more than one SPF record", "merge them into one v=spf1 record")
        return
    if settings.delivery.smarthost:
        yield warning(domain, "mail leaves through a smarthost; its senders are not checked",
                      "make sure the SPF record includes your smarthost provider")
        return
    for address in addresses:
        result = check_host(dns, address, domain)
        if result is not SpfResult.PASS:
            yield error(domain, f"SPF gives {result} for this host's address {address}",
                        f"add ip{'6' if ':' in address else '4'}:{address} or "
                        f"a:{settings.server.hostname} to the SPF record")


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            tags[name.strip().lower()] = "".join(value.split())
    return tags


def published_key_matches(dns: Dns, selector: str, domain: str, ours: str) -> bool | None:
    """True if SELECTOR._domainkey.DOMAIN publishes the key of DKIM record ``ours``;
    None if nothing is published there."""
    records = [r for r in dns.txt(f"{selector}._domainkey.{domain}") if "p=" in r]
    if not records:
        return None
    return any(_tags(r).get("p") == _tags(ours)["p"] for r in records)


def dkim_findings(settings: Settings, dns: Dns, domain: str) -> Iterator[Finding]:
    dkim = settings.dkim
    if not dkim.key_file:
        yield warning("[dkim] key_file", "mail is not DKIM-signed: Gmail, Yahoo and Microsoft "
                      "reject or junk bulk mail without it", "run `phigate dkim keygen` and set "
                      "[dkim] selector and key_file")
        return
    keys = [(dkim.selector, dkim.key_file, "rsa")]
    if dkim.ed25519_key_file:
        keys.append((dkim.ed25519_selector or dkim.selector, dkim.ed25519_key_file, "ed25519"))
    for selector, key_file, kind in keys:
        ours = dns_record(Path(key_file).read_bytes(), kind)  # type: ignore[arg-type]
        name = f"{selector}._domainkey.{domain}"
        match = published_key_matches(dns, selector, domain, ours)
        if match is None:
            yield error(name, f"the {kind} DKIM selector {selector} is not published",
                        f'publish {name}. TXT "{ours}"')
        elif not match:
            yield error(name, f"the published key of selector {selector} is not ours "
                        f"({key_file})", f'replace the record with TXT "{ours}"')


def dmarc_findings(settings: Settings, dns: Dns, domain: str) -> Iterator[Finding]:
    name = f"_dmarc.{domain}"
    records = [r for r in dns.txt(name) if r.lower().startswith("v=dmarc1")]
    if len(records) != 1:
        problem = "no DMARC record" if not records else "more than one DMARC record"
        yield error(name, problem, f'publish {name}. TXT "v=DMARC1; p=none; '
                    f'rua=mailto:dmarc-reports@{domain}" (then tighten p=)')
        return
    tags = _tags(records[0])
    if tags.get("p") not in ("none", "quarantine", "reject"):
        yield error(name, "the DMARC record has no valid p= tag", "add p=none (or quarantine)")
    envelope = settings.feedback.bounce_domain or settings.server.domain
    if tags.get("aspf") == "s" and envelope != domain:
        yield warning(name, f"aspf=s: SPF of the bounce domain {envelope} does not align",
                      "rely on DKIM alignment, or set aspf=r")
    if settings.dkim.key_file and domain not in (settings.dkim.domains or [domain]):
        yield error(name, "DKIM does not sign for this domain, so DMARC cannot align",
                    "add the domain to [dkim] domains")


def ptr_findings(dns: Dns, address: str, hostname: str) -> Iterator[Finding]:
    names = dns.ptr(address)
    if not names:
        yield error(address, "the outbound address has no PTR record",
                    f"ask the address's provider to set its PTR to {hostname}")
        return
    confirmed = [n for n in names if address in dns.addresses(n)]
    if not confirmed:
        yield error(address, f"PTR {names[0]} does not resolve back to {address}",
                    f"publish {names[0]}. A {address}, or fix the PTR")
    elif hostname not in confirmed:
        yield warning(address, f"PTR is {confirmed[0]}, not [server] hostname {hostname}",
                      "set the PTR to the name phigate greets with (HELO)")


def mta_sts_findings(dns: Dns, domain: str) -> Iterator[Finding]:
    sts = [r for r in dns.txt(f"_mta-sts.{domain}") if r.lower().startswith("v=stsv1")]
    rpt = [r for r in dns.txt(f"_smtp._tls.{domain}") if r.lower().startswith("v=tlsrptv1")]
    if sts and not _tags(sts[0]).get("id"):
        yield error(f"_mta-sts.{domain}", "the MTA-STS record has no id=",
                    'publish "v=STSv1; id=YYYYMMDDNN" and change id with each policy change')
    if rpt and not _tags(rpt[0]).get("rua", "").startswith(("mailto:", "https:")):
        yield error(f"_smtp._tls.{domain}", "the TLS-RPT record has no mailto: or https: rua=",
                    f'publish "v=TLSRPTv1; rua=mailto:tls-reports@{domain}"')
    if sts and not rpt:
        yield warning(f"_smtp._tls.{domain}", "MTA-STS is published without TLS-RPT",
                      f'publish _smtp._tls.{domain}. TXT "v=TLSRPTv1; '
                      f'rua=mailto:tls-reports@{domain}"')
