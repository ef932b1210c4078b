"""MTA-STS (RFC 8461), outbound: discover, fetch, parse, cache and apply a domain's policy.

- Discovery: the TXT record ``_mta-sts.<domain>`` (``v=STSv1; id=...``). Exactly one such
  record or the domain has no policy (section 3.1).
- Fetch: ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` over HTTPS whose certificate
  must verify for that name (system store plus ``[delivery] ca_file``), no redirects (3.3),
  at most :data:`MAX_POLICY_BYTES`, within :data:`FETCH_TIMEOUT_SECONDS`. The host name is
  resolved by our own resolver (``[delivery] dns_servers``) like every other delivery name.
- Cache: in the store (table ``mta_sts_policies``) until ``max_age`` runs out. A cached
  policy is used as it is and refreshed in the background when the TXT id changes; a
  failed refresh keeps the cached policy (5.1: the defence against a downgrade by an
  attacker who blocks the fetch). Without a valid cached policy a failed fetch means
  "no policy" (deliver as usual) and is counted for TLS-RPT.
- Apply: in ``enforce`` mode only MX names the policy lists are used, over verified TLS;
  in ``testing`` mode delivery goes on as usual and failures are only reported.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import aiohttp
import dns.asyncresolver
import dns.exception
import dns.resolver
from aiohttp.abc import AbstractResolver, ResolveResult

from phigate.observability.logs import log_event
from phigate.queue.transport_store import StoredStsPolicy, TransportStore

log = logging.getLogger(__name__)

MAX_POLICY_BYTES = 64 * 1024
FETCH_TIMEOUT_SECONDS = 60.0
#: RFC 8461 3.2: max_age is at most 31557600 seconds (about a year).
MAX_AGE_LIMIT = 31_557_600
#: A cached policy is re-checked against its TXT id at most this often (per domain).
RECHECK_SECONDS = 300.0
#: How long a domain the store had no policy for is not read again: the TXT lookup (cached
#: by its TTL) still runs every time, so a policy published meanwhile is found, and a
#: policy another node stored is fetched at worst once more.
ABSENT_RECHECK_SECONDS = 60.0
#: Bound of the in-process memo of domains without a stored policy.
ABSENT_MEMO_SIZE = 10_000

_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


class StsMode(StrEnum):
    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


class StsFailure(StrEnum):
    """Why no policy could be had (RFC 8460 result types)."""

    FETCH_ERROR = "sts-policy-fetch-error"
    INVALID = "sts-policy-invalid"
    WEBPKI_INVALID = "sts-webpki-invalid"


class StsError(Exception):
    def __init__(self, failure: StsFailure, text: str) -> None:
        super().__init__(text)
        self.failure = failure


@dataclass(frozen=True)
class StsPolicy:
    policy_id: str
    mode: StsMode
    mx: tuple[str, ...]
    max_age: int

    def allows(self, host: str) -> bool:
        """Whether ``host`` (an MX name) matches one of the policy's ``mx`` patterns."""
        return any(mx_matches(pattern, host) for pattern in self.mx)

    def lines(self) -> list[str]:
        """The policy as its text lines (TLS-RPT ``policy-string``)."""
        return (["version: STSv1", f"mode: {self.mode}"] + [f"mx: {mx}" for mx in self.mx]
                + [f"max_age: {self.max_age}"])


@dataclass(frozen=True)
class CachedPolicy:
    policy: StsPolicy
    fetched_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class StsLookup:
    """What delivery to a domain has to do about MTA-STS."""

    policy: StsPolicy | None = None
    #: A policy was announced but could not be had (TLS-RPT counts it).
    failure: StsFailure | None = None


class StsCache(Protocol):
    """Where policies are kept between fetches (the store's ``mta_sts_policies``)."""

    def get_sts_policy(self, domain: str) -> CachedPolicy | None: ...

    def put_sts_policy(self, domain: str, cached: CachedPolicy) -> None: ...

    def note_sts_refresh_failed(self, domain: str, now: datetime) -> None: ...


class StoreStsCache:
    """:class:`StsCache` on the store's ``mta_sts_policies`` table."""

    def __init__(self, store: TransportStore) -> None:
        self._store = store

    def get_sts_policy(self, domain: str) -> CachedPolicy | None:
        stored = self._store.get_sts(domain)
        if stored is None:
            return None
        try:
            mode = StsMode(stored.mode)
        except ValueError:
            return None
        policy = StsPolicy(stored.policy_id, mode, stored.mx, stored.max_age)
        return CachedPolicy(policy, stored.fetched_at, stored.expires_at)

    def put_sts_policy(self, domain: str, cached: CachedPolicy) -> None:
        policy = cached.policy
        self._store.put_sts(domain, StoredStsPolicy(
            policy.policy_id, str(policy.mode), policy.mx, policy.max_age, cached.fetched_at,
            cached.expires_at))

    def note_sts_refresh_failed(self, domain: str, now: datetime) -> None:
        self._store.note_sts_refresh_failed(domain, now)


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 4.1: exact, or ``*.example.org`` for exactly one leftmost label."""
    pattern = pattern.rstrip(".").lower()
    host = host.rstrip(".").lower()
    if pattern.startswith("*."):
        label, _, rest = host.partition(".")
        return bool(label) and rest == pattern[2:]
    return host == pattern


def parse_txt(records: list[str]) -> str | None:
    """The policy id from the ``_mta-sts`` TXT strings, or None (no or ambiguous record)."""
    ids = []
    for record in records:
        if not record.startswith("v=STSv1"):
            continue
        fields = dict(_fields(record, ";", "="))
        if fields.get("v") != "STSv1" or not _ID.match(fields.get("id", "")):
            return None
        ids.append(fields["id"])
    return ids[0] if len(ids) == 1 else None


def parse_policy(text: str, policy_id: str) -> StsPolicy:
    """Parse a policy file (CRLF or LF lines ``key: value``); raise :class:`StsError`."""
    values: dict[str, list[str]] = {}
    for key, value in _fields(text.replace("\r\n", "\n"), "\n", ":"):
        values.setdefault(key, []).append(value)
    if values.get("version") != ["STSv1"]:
        raise StsError(StsFailure.INVALID, "MTA-STS policy: version is not STSv1")
    try:
        mode = StsMode((values.get("mode") or [""])[0])
    except ValueError:
        raise StsError(StsFailure.INVALID, "MTA-STS policy: bad mode") from None
    age_text = (values.get("max_age") or [""])[0]
    if not age_text.isdigit() or len(age_text) > 10:
        raise StsError(StsFailure.INVALID, "MTA-STS policy: bad max_age")
    mx = tuple(m.lower().rstrip(".") for m in values.get("mx", []))
    if mode is not StsMode.NONE and not mx:
        raise StsError(StsFailure.INVALID, "MTA-STS policy: no mx in enforce/testing mode")
    return StsPolicy(policy_id, mode, mx, min(int(age_text), MAX_AGE_LIMIT))


def _fields(text: str, separator: str, assign: str) -> list[tuple[str, str]]:
    pairs = []
    for part in text.split(separator):
        key, sep, value = part.partition(assign)
        if sep:
            pairs.append((key.strip(), value.strip()))
    return pairs


class _DnsResolver(AbstractResolver):
    """aiohttp resolves the policy host through our resolver (not the system's)."""

    def __init__(self, resolver: dns.asyncresolver.Resolver) -> None:
        self._resolver = resolver

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results: list[ResolveResult] = []
        for rdtype, fam in (("A", socket.AF_INET), ("AAAA", socket.AF_INET6)):
            try:
                answer = await self._resolver.resolve(host, rdtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            results.extend(ResolveResult(hostname=host, host=r.address, port=port,
                                         family=fam, proto=0, flags=socket.AI_NUMERICHOST)
                           for r in answer)
        if not results:
            raise OSError(f"no address for {host}")
        return results

    async def close(self) -> None:
        return None


async def fetch_policy_text(domain: str, *, resolver: dns.asyncresolver.Resolver,
                            ssl_context: ssl.SSLContext, port: int = 443,
                            timeout: float = FETCH_TIMEOUT_SECONDS) -> str:
    """The policy file of ``domain``; raise :class:`StsError` (never follows redirects)."""
    host = f"mta-sts.{domain}"
    url = f"https://{host}/.well-known/mta-sts.txt" if port == 443 else \
        f"https://{host}:{port}/.well-known/mta-sts.txt"
    connector = aiohttp.TCPConnector(resolver=_DnsResolver(resolver), ssl=ssl_context,
                                     use_dns_cache=False)
    try:
        async with aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise StsError(StsFailure.FETCH_ERROR, f"HTTP {response.status}")
                if response.content_type != "text/plain":
                    raise StsError(StsFailure.INVALID, "not text/plain")
                body = await response.content.read(MAX_POLICY_BYTES + 1)
    except aiohttp.ClientConnectorCertificateError:
        raise StsError(StsFailure.WEBPKI_INVALID, "certificate not valid") from None
    except aiohttp.ClientSSLError:
        raise StsError(StsFailure.WEBPKI_INVALID, "TLS handshake failed") from None
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        raise StsError(StsFailure.FETCH_ERROR, type(error).__name__) from None
    if len(body) > MAX_POLICY_BYTES:
        raise StsError(StsFailure.INVALID, "policy too large")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise StsError(StsFailure.INVALID, "policy not UTF-8") from None


async def lookup_txt_id(resolver: dns.asyncresolver.Resolver, domain: str) -> str | None:
    """The announced policy id, or None (no record). DNS trouble raises ``StsError``."""
    try:
        answer = await resolver.resolve(f"_mta-sts.{domain}", "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    except dns.exception.DNSException as error:
        raise StsError(StsFailure.FETCH_ERROR, type(error).__name__) from None
    texts = [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
    return parse_txt(texts)


@dataclass
class MtaSts:
    """Policies for delivery: :meth:`lookup` per destination domain (see module doc)."""

    resolver: dns.asyncresolver.Resolver
    cache: StsCache
    ssl_context: ssl.SSLContext
    port: int = 443
    now: Callable[[], datetime] = field(default=lambda: datetime.now().astimezone())
    _checked: dict[str, float] = field(default_factory=dict)
    #: Policies already read or fetched by this process (no database read per delivery).
    _memory: dict[str, CachedPolicy] = field(default_factory=dict)
    #: Domains the store had no policy for, and when (monotonic): most destinations publish
    #: none, and reading the store for them on every delivery cost ~6% of delivery's CPU.
    _absent: dict[str, float] = field(default_factory=dict)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def lookup(self, domain: str) -> StsLookup:
        domain = domain.lower()
        cached = self._memory.get(domain)
        if (cached is None or cached.expires_at <= self.now()) and not self._known_absent(domain):
            cached = await asyncio.to_thread(self.cache.get_sts_policy, domain)
            if cached is not None:
                self._memory[domain] = cached
            else:
                self._note_absent(domain)
        if cached is not None and cached.expires_at > self.now():
            self._maybe_refresh(domain, cached)
            return StsLookup(cached.policy)
        try:
            policy_id = await lookup_txt_id(self.resolver, domain)
            if policy_id is None:
                return StsLookup()
            policy = await self._fetch(domain, policy_id)
        except StsError as error:
            log_event(log, "mta_sts_fetch_failed", failure=str(error.failure))
            return StsLookup(failure=error.failure)
        return StsLookup(policy)

    async def refresh(self, domain: str) -> bool:
        """Fetch again if the TXT id changed or the policy nears expiry; True if current.

        A failure keeps the cached policy (RFC 8461 5.1) and is remembered on it.
        """
        cached = await asyncio.to_thread(self.cache.get_sts_policy, domain)
        try:
            policy_id = await lookup_txt_id(self.resolver, domain)
            if cached is not None and (policy_id is None or policy_id == cached.policy.policy_id):
                if cached.expires_at - self.now() > timedelta(seconds=cached.policy.max_age / 2):
                    return True
                policy_id = policy_id or cached.policy.policy_id
            if policy_id is None:
                return cached is None
            await self._fetch(domain, policy_id)
            return True
        except StsError as error:
            log_event(log, "mta_sts_refresh_failed", failure=str(error.failure))
            await asyncio.to_thread(self.cache.note_sts_refresh_failed, domain, self.now())
            return False

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _known_absent(self, domain: str) -> bool:
        since = self._absent.get(domain)
        return since is not None and time.monotonic() - since < ABSENT_RECHECK_SECONDS

    def _note_absent(self, domain: str) -> None:
        if len(self._absent) >= ABSENT_MEMO_SIZE:
            self._absent.clear()
        self._absent[domain] = time.monotonic()

    def _maybe_refresh(self, domain: str, cached: CachedPolicy) -> None:
        last = self._checked.get(domain)
        if last is not None and time.monotonic() - last < RECHECK_SECONDS:
            return
        self._checked[domain] = time.monotonic()
        task = asyncio.create_task(self.refresh(domain), name=f"mta-sts-refresh-{domain}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch(self, domain: str, policy_id: str) -> StsPolicy:
        text = await fetch_policy_text(domain, resolver=self.resolver,
                                       ssl_context=self.ssl_context, port=self.port)
        policy = parse_policy(text, policy_id)
        now = self.now()
        cached = CachedPolicy(policy, now, now + timedelta(seconds=policy.max_age))
        await asyncio.to_thread(self.cache.put_sts_policy, domain, cached)
        self._memory[domain] = cached
        self._absent.pop(domain, None)
        log_event(log, "mta_sts_policy_cached", mode=str(policy.mode),
                  max_age=policy.max_age)
        return policy
