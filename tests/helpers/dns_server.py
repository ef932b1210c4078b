"""A DNS server on 127.0.0.1 (dnslib, UDP, in a thread) answering from a dict of records.

    dns = DnsServer(port, {
        "example.test": [("MX", "10 mx1.example.test."), ("MX", "20 mx2.example.test.")],
        "mx1.example.test": [("A", "127.0.0.1")],
        "nullmx.test": [("MX", "0 .")],
    }).start()
    settings = DeliverySettings(dns_servers=[f"127.0.0.1:{port}"])

Unlike dnslib's ZoneResolver it answers NOERROR with no records for a name that exists
without the asked type (what real servers do), NXDOMAIN only for unknown names, and it can
be told to stay silent (timeouts) or answer SERVFAIL for a name. ``secure(name)`` marks
the answers for a name authentic (the AD bit), as a DNSSEC-validating resolver would.
"""

from __future__ import annotations

import threading
from typing import Any

from dnslib import QTYPE, RCODE, RR, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

Records = dict[str, list[tuple[str, str]]]


class _Resolver(BaseResolver):
    def __init__(self, records: Records) -> None:
        self.lock = threading.Lock()
        self.records = records
        self.servfail: set[str] = set()
        self.authentic: set[str] = set()
        self.queries: list[tuple[str, str]] = []

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            self.queries.append((name, qtype))
            if name in self.authentic:
                reply.header.ad = 1
            if name in self.servfail:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            if name not in self.records:
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
            for rtype, value in self.records[name]:
                if rtype == qtype:
                    reply.add_answer(*RR.fromZone(f"{name}. 60 IN {rtype} {value}"))
        return reply


class DnsServer:
    def __init__(self, port: int, records: Records | None = None) -> None:
        self.port = port
        self._resolver = _Resolver({k.lower(): v for k, v in (records or {}).items()})
        self._server = DNSServer(self._resolver, address="127.0.0.1", port=port,
                                 logger=DNSLogger("-request,-reply,-truncated,-error,-recv,"
                                                  "-send,-data", prefix=False))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, name: str, records: list[tuple[str, str]]) -> None:
        with self._resolver.lock:
            self._resolver.records[name.lower()] = records

    def fail(self, name: str) -> None:
        """Answer SERVFAIL for ``name`` from now on."""
        with self._resolver.lock:
            self._resolver.servfail.add(name.lower())

    def secure(self, *names: str) -> None:
        """Answer for ``names`` with the AD bit set (as a validating resolver would)."""
        with self._resolver.lock:
            self._resolver.authentic.update(n.lower() for n in names)

    @property
    def queries(self) -> list[tuple[str, str]]:
        with self._resolver.lock:
            return list(self._resolver.queries)

    def start(self) -> DnsServer:
        self._server.start_thread()
        return self

    def stop(self) -> None:
        self._server.stop()
        self._server.server.server_close()
