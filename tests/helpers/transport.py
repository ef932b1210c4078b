"""Test servers and material for transport security: an MTA-STS policy host (aiohttp over
HTTPS with a trustme certificate) and certificates with their TLSA records.

    async with StsHost(ca, "example.test", port) as host:
        host.policy = "version: STSv1\\nmode: enforce\\nmx: mx1.example.test\\nmax_age: 86400\\n"
        host.status = 500          # make the next fetches fail
        host.fetches               # how many were served
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
from dataclasses import dataclass

import trustme
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class StsHost:
    def __init__(self, ca: trustme.CA, domain: str, port: int, *,
                 cert_name: str | None = None) -> None:
        self.port = port
        self.policy = ""
        self.status = 200
        self.content_type = "text/plain"
        self.redirect_to: str | None = None
        self.fetches = 0
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(cert_name or f"mta-sts.{domain}").configure_cert(self._context)
        self._runner: web.AppRunner | None = None

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.fetches += 1
        if self.redirect_to is not None:
            raise web.HTTPFound(self.redirect_to)
        return web.Response(status=self.status, body=self.policy.encode(),
                            content_type=self.content_type)

    async def __aenter__(self) -> StsHost:
        app = web.Application()
        app.router.add_get("/.well-known/mta-sts.txt", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port,
                          ssl_context=self._context).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def policy_text(mode: str, *mx: str, max_age: int = 86400) -> str:
    lines = ["version: STSv1", f"mode: {mode}"] + [f"mx: {m}" for m in mx]
    return "\r\n".join(lines + [f"max_age: {max_age}"]) + "\r\n"


@dataclass(frozen=True)
class SelfSigned:
    """A self-signed server certificate (what DANE-EE makes acceptable)."""

    cert_der: bytes
    context: ssl.SSLContext

    def tlsa(self, selector: int = 1, mtype: int = 1) -> str:
        certificate = x509.load_der_x509_certificate(self.cert_der)
        data = (self.cert_der if selector == 0 else certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
        digest = hashlib.sha256(data).hexdigest() if mtype == 1 else data.hex()
        return f"3 {selector} {mtype} {digest}"


def self_signed(name: str, directory: str) -> SelfSigned:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = f"{directory}/{name}.crt", f"{directory}/{name}.key"
    with open(cert_path, "wb") as stream:
        stream.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as stream:
        stream.write(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return SelfSigned(cert.public_bytes(serialization.Encoding.DER), context)


def ta_tlsa(ca: trustme.CA, selector: int = 1) -> str:
    """A DANE-TA (2 x 1) record for the trustme CA's certificate."""
    certificate = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    data = (certificate.public_bytes(serialization.Encoding.DER) if selector == 0 else
            certificate.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    return f"2 {selector} 1 {hashlib.sha256(data).hexdigest()}"
