"""Checks that need no network: the certificate, the trusted networks, URLs and TLS levels."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from phigate.checks.findings import Finding, error, warning
from phigate.config import Settings

EXPIRY_WARNING = timedelta(days=21)
_BELOW_REQUIRED = ("opportunistic",)
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def offline_findings(settings: Settings, now: datetime | None = None) -> list[Finding]:
    now = now or datetime.now(UTC)
    return [*certificate_findings(settings.submission.tls_cert, settings.submission.tls_key, now),
            *network_findings(settings.submission.trusted_networks),
            *public_url_findings(settings.http.public_url),
            *phi_tls_findings(settings)]


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


def certificate_findings(cert_path: Path, key_path: Path, now: datetime) -> Iterator[Finding]:
    subject = "[submission] tls_cert"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        yield error(subject, f"{cert_path} is not a PEM certificate",
                    "point tls_cert at the PEM certificate (chain) of this host")
        return
    try:
        key = load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        yield error("[submission] tls_key", f"{key_path} is not an unencrypted PEM private key",
                    "point tls_key at the PEM key of the certificate")
        return
    if _spki(cert.public_key()) != _spki(key.public_key()):
        yield error(subject, f"the certificate does not match the key in {key_path}",
                    "install the key the certificate was issued for, or re-issue the "
                    "certificate for this key")
    expires = cert.not_valid_after_utc
    if expires <= now:
        yield error(subject, f"the certificate expired on {expires:%Y-%m-%d}",
                    "renew the certificate")
    elif expires - now < EXPIRY_WARNING:
        yield warning(subject, f"the certificate expires on {expires:%Y-%m-%d}",
                      "renew the certificate before then")
    if cert.not_valid_before_utc > now:
        yield error(subject, f"the certificate is not valid before "
                    f"{cert.not_valid_before_utc:%Y-%m-%d}", "check the clock or the certificate")


def network_findings(networks: list[str]) -> Iterator[Finding]:
    for index, text in enumerate(networks):
        subject = f"[submission] trusted_networks[{index}]"
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue  # validate() already refuses it with its own message
        if network.is_private or network.is_loopback or network.is_link_local:
            continue
        if network.prefixlen == 0 or network.is_global or network.num_addresses > 2 ** 24:
            yield error(subject, f"{text} includes public Internet addresses: anyone there may "
                        "relay without a password", "list only your LAN or VPN ranges "
                        "(e.g. 10.0.0.0/8, 192.168.1.0/24), or remove the entry and use AUTH")
        else:
            yield warning(subject, f"{text} is neither private nor public address space",
                          "make sure only your own hosts use these addresses")


def public_url_findings(url: str) -> Iterator[Finding]:
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    subject = "[http] public_url"
    if parts.scheme == "http" and (parts.hostname or "") in _LOCAL_HOSTS:
        yield warning(subject, f"{url} is plain http (acceptable on this host only)",
                      "use an https:// URL served by a TLS reverse proxy")
        return
    yield error(subject, f"{url} is not https: unsubscribe links and pickup pages would travel "
                "in clear", "set an https:// URL and terminate TLS in front of [http] listen")


def phi_tls_findings(settings: Settings) -> Iterator[Finding]:
    delivery = settings.delivery
    if delivery.tls_phi in _BELOW_REQUIRED:
        yield error("[delivery] tls_phi", f"{delivery.tls_phi} is below required: PHI could "
                    "be sent to a server that offers no encryption",
                    'set tls_phi = "verify" (or "required" for partners with private CAs)')
    for domain, policy in sorted(delivery.domains.items()):
        if policy.tls in _BELOW_REQUIRED:
            yield warning(f"[delivery.domains.\"{domain}\"] tls",
                          f"{policy.tls}: mail with PHI to {domain} still needs at least "
                          "required, so it waits where TLS fails",
                          'set tls = "required" or "verify" if PHI goes there')

