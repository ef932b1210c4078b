"""Where mail for a domain goes: MX hosts by preference, or the configured smarthost.

DNS goes through dnspython's async resolver with the nameservers of ``[delivery]
dns_servers`` (the system's otherwise). Host names are resolved to addresses here too, so
one resolver answers every question and the SMTP client connects to addresses while it
verifies certificates against the host *name*.

- MX records by preference; hosts of equal preference in random order (RFC 5321 5.1).
- No MX: the domain itself is the host (its A/AAAA records, the "implicit MX").
- A null MX (a single ``MX 0 .``, RFC 7505): permanent failure.
- A domain that does not exist: permanent failure. DNS timeouts and SERVFAIL: temporary.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from phigate.config import DeliverySettings, HostPort
from phigate.mta.delivery.outcomes import DeliveryError, NullMxError


@dataclass(frozen=True)
class NextHop:
    """One host to try: its name (for TLS and logs), addresses and port."""

    name: str
    addresses: tuple[str, ...]
    port: int
    #: The configured relay rather than the recipient domain's own MX.
    smarthost: bool = False

    def label(self, address: str) -> str:
        return f"{self.name}[{address}]:{self.port}"


class Router:
    """Resolves a destination domain to the ordered hosts to try."""

    def __init__(self, settings: DeliverySettings,
                 resolver: dns.asyncresolver.Resolver | None = None,
                 rng: random.Random | None = None) -> None:
        self._settings = settings
        self._resolver = resolver or make_resolver(settings.dns_servers,
                                                   timeout=settings.connect_timeout_seconds)
        self._rng = rng or random.Random()  # noqa: S311 - load spreading, not security
        self._smarthost = (HostPort.parse(settings.smarthost, key="[delivery] smarthost")
                           if settings.smarthost else None)

    async def next_hops(self, domain: str) -> list[NextHop]:
        """Hosts for ``domain`` in the order to try; raises :class:`DeliveryError`.

        Hosts whose names do not resolve are left out; if none is left that is a temporary
        failure (an MX name may be fixed tomorrow) unless DNS said the names do not exist.
        """
        if self._smarthost is not None:
            addresses = await self._addresses(self._smarthost.host)
            if not addresses:
                raise DeliveryError(451, "4.4.3 smarthost name does not resolve",
                                    permanent=False)
            return [NextHop(self._smarthost.host, addresses, self._smarthost.port, True)]
        names = await self._mx_names(domain)
        hops = []
        for name in names:
            addresses = await self._addresses(name)
            if addresses:
                hops.append(NextHop(name, addresses, self._settings.mx_port))
        if not hops:
            raise DeliveryError(451, f"4.4.3 no address for the mail hosts of {domain}",
                                permanent=False)
        return hops

    async def _mx_names(self, domain: str) -> list[str]:
        try:
            answer = await self._resolver.resolve(domain, "MX")
        except dns.resolver.NXDOMAIN:
            # Some servers answer NXDOMAIN for "no record of this type"; the A lookup below
            # tells whether the domain really does not exist.
            if await self._addresses(domain):
                return [domain]
            raise DeliveryError(550, f"5.1.2 domain {domain} does not exist",
                                permanent=True) from None
        except dns.resolver.NoAnswer:
            return [domain]
        except (dns.resolver.NoNameservers, dns.exception.Timeout,
                dns.resolver.LifetimeTimeout) as error:
            raise DeliveryError(451, f"4.4.3 DNS lookup of MX failed ({type(error).__name__})",
                                permanent=False) from error
        records = sorted(answer, key=lambda r: r.preference)
        exchanges = [str(r.exchange).rstrip(".").lower() for r in records]
        if exchanges == [""]:
            raise NullMxError(domain)
        # Equal preference: random order spreads load (RFC 5321 5.1); keep preference order.
        shuffled: dict[int, list[str]] = {}
        for record, name in zip(records, exchanges, strict=True):
            if name:  # a "." among real MX records is meaningless; skip it
                shuffled.setdefault(record.preference, []).append(name)
        ordered: list[str] = []
        for preference in sorted(shuffled):
            group = shuffled[preference]
            self._rng.shuffle(group)
            ordered.extend(n for n in group if n not in ordered)
        return ordered

    async def _addresses(self, name: str) -> tuple[str, ...]:
        try:
            return (str(ipaddress.ip_address(name)),)
        except ValueError:
            pass
        found: list[str] = []
        failures = 0
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._resolver.resolve(name, rdtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except (dns.resolver.NoNameservers, dns.exception.Timeout) as error:
                failures += 1
                if failures == 2:
                    raise DeliveryError(451, "4.4.3 DNS lookup of a mail host failed "
                                        f"({type(error).__name__})", permanent=False) from error
                continue
            found.extend(r.address for r in answer)
        return tuple(found)


def make_resolver(servers: list[str], *, timeout: float = 30.0) -> dns.asyncresolver.Resolver:
    """A resolver for ``[delivery] dns_servers`` (``HOST`` or ``HOST:PORT``), else the system's."""
    if not servers:
        resolver = dns.asyncresolver.Resolver()
    else:
        resolver = dns.asyncresolver.Resolver(configure=False)
        nameservers: list[str | dns.nameserver.Nameserver] = []
        for server in servers:
            if server.startswith("[") or server.count(":") == 1:
                hostport = HostPort.parse(server, key="[delivery] dns_servers")
            else:  # a bare IPv4 or IPv6 address
                hostport = HostPort(server, 53)
            nameservers.append(dns.nameserver.Do53Nameserver(hostport.host, hostport.port))
        resolver.nameservers = nameservers
    resolver.lifetime = timeout
    # Honour TTLs: a busy destination is looked up once per TTL, not once per message.
    resolver.cache = dns.resolver.LRUCache(10_000)
    return resolver
