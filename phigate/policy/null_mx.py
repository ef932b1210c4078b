"""Does a domain refuse all mail with a null MX (RFC 7505)? Cached, fail-open.

Asked per recipient at RCPT time (the policy engine runs off the event loop, in the small
thread pool every blocking call of the relay shares), so a lookup must rarely block:

- answers are cached for their TTL (at least a minute, at most an hour); negative answers
  (NXDOMAIN, no MX record) for the SOA's negative TTL (RFC 2308), within the same bounds;
- a DNS failure or timeout is "don't know": the recipient is accepted and delivery decides
  later, because refusing mail for a resolver hiccup would lose reminders. It is cached for
  a minute, so a dead resolver costs one timeout per domain, not one per recipient;
- concurrent lookups of one domain share one query (the others wait for it);
- an expired entry is still answered from (for up to a day) while one background thread
  refreshes it, so a slow or dead resolver does not stall recipients whose domain is known.
  Null MX is a stable, deliberate setting of a domain; a day-old answer is a fair guess,
  and delivery checks the MX again anyway.

The cache holds at most 10,000 domains (least recently used go first).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.rdatatype
import dns.resolver

from phigate.config import HostPort

_MIN_TTL, _MAX_TTL, _FAILURE_TTL = 60.0, 3600.0, 60.0
#: How long past its TTL an answer is still used while a refresh runs.
_STALE_SECONDS = 86400.0
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


@dataclass(frozen=True)
class _Entry:
    null: bool
    expires: float


class NullMxChecker:
    def __init__(self, resolver: dns.resolver.Resolver, *,
                 clock: Callable[[], float] = time.monotonic,
                 cache_size: int = _CACHE_SIZE) -> None:
        self._resolver = resolver
        self._clock = clock
        self._cache_size = cache_size
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._in_flight: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def has_null_mx(self, domain: str) -> bool:
        domain = domain.lower().rstrip(".")
        now = self._clock()
        with self._lock:
            entry = self._cache.get(domain)
            if entry is not None:
                self._cache.move_to_end(domain)
                if entry.expires > now:
                    return entry.null
                if entry.expires + _STALE_SECONDS > now:
                    if domain not in self._in_flight:
                        self._in_flight[domain] = threading.Event()
                        threading.Thread(target=self._refresh, args=(domain,),
                                         name="null-mx-refresh", daemon=True).start()
                    return entry.null
            flight = self._in_flight.get(domain)
            leader = flight is None
            if flight is None:
                flight = self._in_flight[domain] = threading.Event()
        if leader:
            return self._refresh(domain)
        # Someone is asking already: wait for that answer (never longer than a lookup).
        flight.wait(self._resolver.lifetime + 1)
        with self._lock:
            entry = self._cache.get(domain)
        return entry.null if entry is not None else False

    def _refresh(self, domain: str) -> bool:
        """Look ``domain`` up, cache the answer and wake whoever waits for it."""
        try:
            null, ttl = self._lookup(domain)
            with self._lock:
                self._cache[domain] = _Entry(null, self._clock() + ttl)
                self._cache.move_to_end(domain)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return null
        finally:
            with self._lock:
                flight = self._in_flight.pop(domain, None)
            if flight is not None:
                flight.set()

    def _lookup(self, domain: str) -> tuple[bool, float]:
        try:
            answer = self._resolver.resolve(domain, dns.rdatatype.MX, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as error:
            return False, _negative_ttl(_nxdomain_response(error))
        except dns.exception.DNSException:  # SERVFAIL, timeouts, bad names
            return False, _FAILURE_TTL
        if answer.rrset is None:  # the domain exists but has no MX
            return False, _negative_ttl(answer.response)
        records = list(answer.rrset)
        # RFC 7505: exactly one MX, preference 0, exchange "." means no mail at all.
        null = len(records) == 1 and records[0].exchange.to_text() == "."
        return null, _bounded(float(answer.rrset.ttl))


def _negative_ttl(response: dns.message.Message | None) -> float:
    """RFC 2308: the lesser of the SOA record's TTL and its MINIMUM field."""
    for rrset in response.authority if response is not None else []:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return _bounded(float(min(rrset.ttl, rrset[0].minimum)))
    return _MIN_TTL


def _nxdomain_response(error: dns.resolver.NXDOMAIN) -> dns.message.Message | None:
    try:
        response: dns.message.Message = error.response(error.qnames()[0])
    except (KeyError, IndexError, TypeError):  # raised without the responses
        return None
    return response


def _bounded(ttl: float) -> float:
    return min(max(ttl, _MIN_TTL), _MAX_TTL)
