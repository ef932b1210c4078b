"""Which TLS a delivery needs, and the SSL contexts that enforce it.

Levels (weakest first):

- ``opportunistic``: STARTTLS when the server offers it, any certificate; plaintext otherwise.
- ``required``: TLS 1.2+ or no delivery; any certificate (a BAA partner's private CA).
- ``verify``: TLS 1.2+ and a certificate valid for the host name we connect to (the MX
  name, or the smarthost name), checked against the system store plus ``[delivery] ca_file``.

The level follows the content: ordinary mail gets ``[delivery] tls_default``, mail the
policy marked as carrying PHI gets ``[delivery] tls_phi`` (``verify`` by default). A
per-domain ``tls`` (``[delivery.domains."partner.org"]``) replaces both defaults, so the
admin can accept a BAA partner's self-signed certificate; but PHI is never sent in clear:
for PHI the level is at least ``required`` whatever the configuration says.
"""

from __future__ import annotations

import ssl
from enum import IntEnum
from functools import cache

from phigate.config import DeliverySettings


class TlsLevel(IntEnum):
    OPPORTUNISTIC = 0
    REQUIRED = 1
    VERIFY = 2

    @classmethod
    def parse(cls, name: str) -> TlsLevel:
        return cls[name.upper()]

    def __str__(self) -> str:
        return self.name.lower()


def tls_level_for(settings: DeliverySettings, domain: str, *, phi: bool) -> TlsLevel:
    """The TLS level for mail to ``domain`` (lower-case) that does or does not carry PHI."""
    policy = settings.domains.get(domain.lower())
    if policy is not None and policy.tls:
        level = TlsLevel.parse(policy.tls)
    else:
        level = TlsLevel.parse(settings.tls_phi if phi else settings.tls_default)
    if phi:
        level = max(level, TlsLevel.REQUIRED)
    return level


def refusal_reason(level: TlsLevel, host: str, *, phi: bool) -> str:
    """The deferral text when ``host`` offers no STARTTLS but ``level`` needs TLS."""
    what = "TLS required for PHI" if phi else f"TLS required by policy ({level})"
    return f"{what}: {host} offers no STARTTLS"


class TlsContexts:
    """SSL contexts per level, built once (building one reads the CA store)."""

    def __init__(self, ca_file: str = "") -> None:
        self._ca_file = ca_file

    def for_level(self, level: TlsLevel) -> ssl.SSLContext:
        return _context(level >= TlsLevel.VERIFY, self._ca_file)


@cache
def _context(verify: bool, ca_file: str) -> ssl.SSLContext:
    if verify:
        context = ssl.create_default_context()
        if ca_file:
            context.load_verify_locations(cafile=ca_file)
    else:
        # Unverified encryption still beats plaintext (RFC 7435 opportunistic security):
        # most MX certificates do not match the MX name, and a refusal here would send
        # ordinary mail in clear instead.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    # TLS 1.0/1.1 are refused at every level (NIST SP 800-52r2). A failed handshake is a
    # temporary failure of that host; we never retry the same host in plaintext.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
