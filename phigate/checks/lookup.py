"""Blocking DNS look-ups for the checks, through the resolvers of ``[delivery] dns_servers``.

Each answer is data, never an exception: ``None`` means the name or record type does not
exist, :class:`LookupFailed` that the resolvers could not say (timeout, SERVFAIL).
"""

from __future__ import annotations

import dns.exception
import dns.nameserver
import dns.resolver
import dns.reversename

from phigate.config import HostPort


class LookupFailed(Exception):
    """The resolvers gave no usable answer; the check cannot conclude."""


class Dns:
    def __init__(self, servers: list[str], *, timeout: float = 5.0) -> None:
        if servers:
            self._resolver = dns.resolver.Resolver(configure=False)
            nameservers: list[str | dns.nameserver.Nameserver] = []
            for server in servers:
                hostport = HostPort.parse(server if ":" in server else f"{server}:53",
                                          key="[delivery] dns_servers")
                nameservers.append(dns.nameserver.Do53Nameserver(hostport.host, hostport.port))
            self._resolver.nameservers = nameservers
        else:
            self._resolver = dns.resolver.Resolver()
        self._resolver.lifetime = timeout
        self.lookups = 0

    def _query(self, name: str, rdtype: str) -> list[str] | None:
        self.lookups += 1
        try:
            answer = self._resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as failure:
            raise LookupFailed(f"no answer for {name} {rdtype}") from failure
        return [rdata.to_text() for rdata in answer]

    def txt(self, name: str) -> list[str]:
        """The TXT strings at ``name``, each record's character-strings joined."""
        answer = self._resolver_txt(name)
        return answer or []

    def _resolver_txt(self, name: str) -> list[str] | None:
        self.lookups += 1
        try:
            answer = self._resolver.resolve(name, "TXT", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as failure:
            raise LookupFailed(f"no answer for {name} TXT") from failure
        return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]

    def addresses(self, name: str) -> list[str]:
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            found += self._query(name, rdtype) or []
        return found

    def mx_hosts(self, name: str) -> list[str]:
        hosts = []
        for text in self._query(name, "MX") or []:
            host = text.split()[-1].rstrip(".").lower()
            if host:
                hosts.append(host)
        return hosts

    def ptr(self, address: str) -> list[str]:
        name = dns.reversename.from_address(address).to_text()
        return [host.rstrip(".").lower() for host in self._query(name, "PTR") or []]
