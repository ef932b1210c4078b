"""Does a domain refuse all mail with a null MX (RFC 7505)? Cached, fail-open.

Asked per recipient at RCPT time (the policy engine runs off the event loop), so answers
are cached for their TTL (at least a minute, at most an hour). A DNS failure or timeout is
"don't know": the recipient is accepted and delivery decides later, because refusing mail
for a resolver hiccup would lose reminders.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

import dns.exception
import dns.rdatatype
import dns.resolver

from phigate.config import HostPort

_MIN_TTL, _MAX_TTL, _FAILURE_TTL = 60.0, 3600.0, 60.0
_CACHE_SIZE = 10_000


def make_sync_resolver(servers: Sequence[str], *, timeout: float) -> dns.resolver.Resolver:
    """dnspython's resolver on ``[delivery] dns_servers`` (the system's when empty)."""
    if not servers:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        parsed = [HostPort.parse(s if ":" in s else f"{s}:53", key="[delivery] dns_servers")
                  for s in servers]
        resolver.nameservers = [p.host for p in parsed]
        resolver.port = parsed[0].port
    resolver.lifetime = timeout
    resolver.timeout = timeout
    return resolver


class NullMxChecker:
    def __init__(self, resolver: dns.resolver.Resolver) -> None:
        self._resolver = resolver
        self._cache: OrderedDict[str, tuple[bool, float]] = OrderedDict()
        self._lock = threading.Lock()

    def has_null_mx(self, domain: str) -> bool:
        domain = domain.lower().rstrip(".")
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(domain)
            if cached is not None and cached[1] > now:
                self._cache.move_to_end(domain)
                return cached[0]
        answer, ttl = self._lookup(domain)
        with self._lock:
            self._cache[domain] = (answer, now + ttl)
            self._cache.move_to_end(domain)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return answer

    def _lookup(self, domain: str) -> tuple[bool, float]:
        try:
            answer = self._resolver.resolve(domain, dns.rdatatype.MX, raise_on_no_answer=False)
        except dns.exception.DNSException:  # NXDOMAIN, SERVFAIL, timeouts, bad names
            return False, _FAILURE_TTL
        records = list(answer.rrset or [])
        ttl = min(max(float(answer.rrset.ttl if answer.rrset else _MIN_TTL), _MIN_TTL),
                  _MAX_TTL)
        # RFC 7505: exactly one MX, preference 0, exchange "." means no mail at all.
        null = len(records) == 1 and records[0].exchange.to_text() == "."
        return null, ttl
