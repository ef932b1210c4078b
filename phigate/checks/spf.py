"""Enough of SPF (RFC 7208) to say whether a record allows an address.

Mechanisms ``ip4``, ``ip6``, ``a``, ``mx``, ``include``, ``exists``-less records and the
``redirect`` modifier, with the 10-look-up limit. Macros are not expanded: a record that
uses them is reported as undecidable rather than guessed.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum

from phigate.checks.lookup import Dns

MAX_LOOKUPS = 10


class SpfResult(StrEnum):
    PASS = "pass"  # noqa: S105  (an SPF result, not a password)
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"  # no SPF record
    PERMERROR = "permerror"  # broken record, too many look-ups, or something we cannot judge


_QUALIFIERS = {"+": SpfResult.PASS, "-": SpfResult.FAIL, "~": SpfResult.SOFTFAIL,
               "?": SpfResult.NEUTRAL}


class _TooMany(Exception):
    pass


def spf_record(dns: Dns, domain: str) -> str | None:
    records = [t for t in dns.txt(domain) if t.lower().startswith("v=spf1")
               and (len(t) == 6 or t[6] == " ")]
    return records[0] if len(records) == 1 else ("" if records else None)


def check_host(dns: Dns, address: str, domain: str) -> SpfResult:
    """What SPF says of mail from ``address`` for ``domain``."""
    try:
        return _evaluate(dns, ipaddress.ip_address(address), domain, [0])
    except _TooMany:
        return SpfResult.PERMERROR


def _evaluate(dns: Dns, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, domain: str,
              budget: list[int]) -> SpfResult:
    record = spf_record(dns, domain)
    if record is None:
        return SpfResult.NONE
    if not record or "%" in record:
        return SpfResult.PERMERROR
    redirect = None
    for term in record.split()[1:]:
        if term.lower().startswith("redirect="):
            redirect = term.split("=", 1)[1]
            continue
        if "=" in term:
            continue  # another modifier (exp=)
        qualifier = _QUALIFIERS.get(term[0])
        mechanism = term[1:] if qualifier else term
        if _matches(dns, ip, domain, mechanism.lower(), budget):
            return qualifier or SpfResult.PASS
    if redirect:
        _spend(budget)
        return _evaluate(dns, ip, redirect, budget)
    return SpfResult.NEUTRAL


def _spend(budget: list[int]) -> None:
    budget[0] += 1
    if budget[0] > MAX_LOOKUPS:
        raise _TooMany


def _matches(dns: Dns, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, domain: str,
             mechanism: str, budget: list[int]) -> bool:
    name, _, value = mechanism.partition(":")
    value, _, prefix = value.partition("/")
    if name == "all":
        return True
    if name in ("ip4", "ip6"):
        network = ipaddress.ip_network(f"{value}/{prefix}" if prefix else value, strict=False)
        return ip.version == network.version and ip in network
    if name == "include":
        _spend(budget)
        return _evaluate(dns, ip, value, budget) is SpfResult.PASS
    if name in ("a", "mx"):
        _spend(budget)
        hosts = [value or domain] if name == "a" else dns.mx_hosts(value or domain)
        return any(_in(ip, address, prefix) for host in hosts for address in dns.addresses(host))
    raise _TooMany  # ptr, exists, unknown: we do not judge them


def _in(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, address: str, prefix: str) -> bool:
    other = ipaddress.ip_address(address)
    if other.version != ip.version:
        return False
    bits = int(prefix) if prefix and other.version == 4 else other.max_prefixlen
    return ip in ipaddress.ip_network(f"{other}/{bits}", strict=False)
