"""One outbound message and its MX records, for the tests that drive the SMTP client (or
the scheduler) against scripted loopback sinks routed by the test DNS server.

    mx(dns)                                              # mx1.example.test at 127.0.0.1
    mx(dns, ("mx1.example.test", "127.0.0.2"), ("mx2.example.test", "127.0.0.3"))
    await transport.deliver(message("pat@example.test", "kim@example.test", phi=True))
"""

from __future__ import annotations

from helpers.dns_server import DnsServer
from phigate.mta.delivery.client import OutboundMessage

BODY = (b"From: clinic@practice.test\r\nTo: pat@example.test\r\nSubject: hello\r\n"
        b"Message-ID: <1@practice.test>\r\n\r\nSee you on Tuesday.\r\n")


def message(*recipients: str, phi: bool = False, domain: str = "example.test") -> OutboundMessage:
    """:data:`BODY` from clinic@practice.test to ``recipients`` (pat@example.test)."""
    return OutboundMessage(sender="clinic@practice.test",
                           recipients=recipients or ("pat@example.test",),
                           domain=domain, content=BODY, phi=phi, message_id="M1")


def mx(dns: DnsServer, *hosts: tuple[str, str], domain: str = "example.test") -> None:
    """``domain``'s MX records, preference 10, 20... in order, each host with its A record."""
    hosts = hosts or (("mx1.example.test", "127.0.0.1"),)
    dns.set(domain, [("MX", f"{10 * (i + 1)} {name}.") for i, (name, _) in enumerate(hosts)])
    for name, address in hosts:
        dns.set(name, [("A", address)])
