"""DKIM signing at delivery time (dkimpy): rsa-sha256, optionally also ed25519-sha256.

The signer works on the final message bytes. It never reserialises the message through
the ``email`` package (that may refold headers and break what the recipient sees); it
only removes phigate's internal ``X-Phigate-*`` header lines and prepends the
``DKIM-Signature`` header(s) dkimpy computes.

Header list: the present ones of :data:`SIGNED_HEADERS`, in message order, plus one more
occurrence of each of :data:`OVERSIGNED_HEADERS` that is present, so nobody can add a
second From, Subject, Date or List-Unsubscribe after signing without breaking the
signature (for the RFC 8463 example message this yields exactly the RFC's ``h=``).

Speed: dkimpy does canonicalisation, hashing and the header layout, but its RSA is pure
Python (~6 ms of CPU per 2048-bit signature, the largest cost of a delivery). The
rsa-sha256 signature itself is therefore made by OpenSSL through ``cryptography`` over the
digest dkimpy computed (:class:`_OpenSslRsaDKIM`): the same bytes, PKCS#1 v1.5 being
deterministic, in well under a millisecond.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Literal, Protocol

import dkim
import dkim.crypto
import nacl.signing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from phigate.config import DkimSettings
from phigate.errors import ConfigError, PhigateError
from phigate.mta.delivery.dkim_rsa import _OpenSslRsaDKIM
from phigate.observability.labels import DkimAlgorithmLabel

KeyKind = Literal["rsa", "ed25519"]

SIGNED_HEADERS = (
    "from", "sender", "reply-to", "to", "cc", "subject", "date", "message-id",
    "in-reply-to", "references",
    "mime-version", "content-type", "content-transfer-encoding", "content-id",
    "content-description", "content-disposition", "content-language",
    "list-id", "list-unsubscribe", "list-unsubscribe-post", "feedback-id",
)
OVERSIGNED_HEADERS = frozenset({"from", "subject", "date", "list-unsubscribe",
                                "list-unsubscribe-post"})

_INTERNAL_HEADER = re.compile(rb"x-phigate-[^:\s]*\s*:", re.IGNORECASE)
_RSA_BITS = 2048


class MessageSigner(Protocol):
    """What delivery needs of a signer (:class:`DkimSigner`, or the rollover's keyring)."""

    def sign(self, message: bytes) -> bytes: ...


class DkimError(PhigateError):
    """Signing failed; the message says why in one line, never with message content."""

    def __init__(self, message: str, algorithm: DkimAlgorithmLabel = "rsa") -> None:
        super().__init__(message)
        self.algorithm: DkimAlgorithmLabel = algorithm


def generate_key(kind: KeyKind = "rsa") -> bytes:
    """New private key file content: RSA 2048 PEM (PKCS#8) or base64 of 32 raw ed25519 bytes."""
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    if kind == "ed25519":
        return base64.b64encode(bytes(nacl.signing.SigningKey.generate())) + b"\n"
    raise ValueError(f"unknown key type {kind!r}")


def dns_record(private_key: bytes, kind: KeyKind = "rsa") -> str:
    """The TXT record value publishing the public half of ``private_key``."""
    if kind == "rsa":
        loaded = serialization.load_pem_private_key(private_key, password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ValueError("not an RSA private key")
        der = loaded.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"
    if kind == "ed25519":
        signing_key = _load_ed25519(private_key)
        public = base64.b64encode(bytes(signing_key.verify_key)).decode("ascii")
        return f"v=DKIM1; k=ed25519; p={public}"
    raise ValueError(f"unknown key type {kind!r}")


def strip_internal_headers(message: bytes) -> bytes:
    """Remove ``X-Phigate-*`` header fields (with their continuation lines); body untouched."""
    head, separator, body = _split_head(message)
    kept: list[bytes] = []
    dropping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = _INTERNAL_HEADER.match(line) is not None
        if not dropping:
            kept.append(line)
    return b"".join(kept) + separator + body


def headers_to_sign(message: bytes) -> list[str]:
    """The ``h=`` list for ``message`` (see the module docstring)."""
    present = [name for name in _header_names(message) if name in SIGNED_HEADERS]
    extra = [name for name in present if name in OVERSIGNED_HEADERS]
    return present + extra


@dataclass(frozen=True)
class _Key:
    algorithm: bytes  # b"rsa-sha256" | b"ed25519-sha256"
    selector: str
    private_key: bytes
    #: rsa-sha256: the key parsed once for OpenSSL (thread-safe, reused for every message).
    openssl: rsa.RSAPrivateKey | None = None


class DkimSigner:
    """Signs messages whose From: domain is one of ``domains``."""

    def __init__(
        self,
        *,
        domains: Iterable[str],
        selector: str,
        rsa_key: bytes,
        ed25519_selector: str = "",
        ed25519_key: bytes = b"",
        also_rsa: Iterable[tuple[str, bytes]] = (),
    ) -> None:
        """``also_rsa``: more (selector, RSA key) pairs signed after the first, e.g. the
        retiring key of a rollover while receivers may still see only its record."""
        self.domains = frozenset(domain.lower().rstrip(".") for domain in domains)
        self._keys = [_Key(b"rsa-sha256", name, key, _load_rsa(key))
                      for name, key in ((selector, rsa_key), *also_rsa)]
        if ed25519_key:
            self._keys.append(_Key(b"ed25519-sha256", ed25519_selector or selector, ed25519_key))

    @classmethod
    def from_settings(cls, settings: DkimSettings, default_domain: str, *,
                      also_rsa: Iterable[tuple[str, bytes]] = ()) -> DkimSigner | None:
        """None when signing is off (no ``key_file``); ConfigError for unusable keys."""
        if not settings.key_file:
            return None
        if not settings.selector:
            raise ConfigError("[dkim] selector: required when [dkim] key_file is set")
        rsa_key = read_rsa_key("[dkim] key_file", settings.key_file)
        ed25519_key = b""
        if settings.ed25519_key_file:
            ed25519_key = _read_key("[dkim] ed25519_key_file", settings.ed25519_key_file)
            try:
                _load_ed25519(ed25519_key)
            except ValueError:
                raise ConfigError("[dkim] ed25519_key_file: not a base64 ed25519 key") from None
        return cls(
            domains=settings.domains or [default_domain],
            selector=settings.selector,
            rsa_key=rsa_key,
            ed25519_selector=settings.ed25519_selector,
            ed25519_key=ed25519_key,
            also_rsa=also_rsa,
        )

    @property
    def selectors(self) -> list[str]:
        """The selectors each message is signed with, topmost signature first."""
        return [key.selector for key in self._keys]

    def signing_domain(self, message: bytes) -> str | None:
        """The From: domain when it is exactly one address in a domain we sign for."""
        head, _, _ = _split_head(message)  # the body is not needed: do not parse it
        domain = _from_domain(_first_from_field(head))
        return domain if domain in self.domains else None

    def sign(self, message: bytes) -> bytes:
        """``message`` without ``X-Phigate-*`` headers, with DKIM-Signature(s) prepended.

        Returned unsigned (but still stripped) when the From: domain is not ours.
        """
        message = strip_internal_headers(message)
        domain = self.signing_domain(message)
        if domain is None:
            return message
        linesep = b"\r\n" if b"\r\n" in message.split(b"\n", 1)[0] + b"\n" else b"\n"
        include = [name.encode("ascii") for name in headers_to_sign(message)]
        signatures: list[bytes] = []
        for key in self._keys:
            try:
                if key.openssl is not None:  # rsa-sha256
                    signatures.append(_OpenSslRsaDKIM(message, key.openssl, linesep=linesep)
                                      .sign_relaxed(key.selector.encode("ascii"),
                                                    domain.encode("ascii"), include))
                    continue
                signer = dkim.DKIM(message, signature_algorithm=key.algorithm, linesep=linesep)
                signatures.append(signer.sign(
                    key.selector.encode("ascii"),
                    domain.encode("ascii"),
                    key.private_key,
                    canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=include,
                ))
            except (dkim.DKIMException, UnicodeEncodeError, ValueError) as error:
                # dkimpy's messages name keys and header names, never content.
                raise DkimError(
                    f"DKIM {key.algorithm.decode()} signing failed: {type(error).__name__}",
                    "ed25519" if key.algorithm.startswith(b"ed25519") else "rsa") from None
        # rsa on top: some verifiers look only at the first signature, and not all of
        # them know ed25519 yet.
        return b"".join(signatures) + message


#: The field-name test of the ``email`` package's header parser: a line that is neither
#: this nor a continuation ends the header block for it (the rest is body).
_HEADER_LINE = re.compile(rb"From |[\041-\071\073-\176]*:|[\t ]")


def _first_from_field(head: bytes) -> bytes | None:
    """The first ``From:`` field of ``head`` with its continuation lines, as the ``email``
    package's parser finds it (lines after a malformed one are not headers to it)."""
    found: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if _HEADER_LINE.match(line) is None:
            break
        if line[:1] in (b" ", b"\t"):
            if found:
                found.append(line)
            continue
        if found:
            break
        if line[:5].lower() == b"from:":
            found.append(line)
    return b"".join(found) if found else None


#: From: fields longer than this are parsed each time rather than kept in the cache.
_CACHED_FIELD_BYTES = 1000


def _from_domain(field: bytes | None) -> str | None:
    """The domain of a From: field holding exactly one address, lower-cased (None
    otherwise). Parsed with ``email.policy.default`` (~0.3 ms), hence cached: a practice
    sends from a handful of addresses."""
    if field is None:
        return None
    if len(field) > _CACHED_FIELD_BYTES:
        return _parse_from_domain.__wrapped__(field)
    return _parse_from_domain(field)


@functools.lru_cache(maxsize=1024)
def _parse_from_domain(field: bytes) -> str | None:
    try:
        headers = BytesHeaderParser(policy=policy.default).parsebytes(field)
        from_header = headers["from"]  # parsed on each access: once
        addresses: tuple[Address, ...] = from_header.addresses if from_header else ()
    except (ValueError, TypeError, IndexError, AttributeError):
        return None
    if len(addresses) != 1:
        return None
    return addresses[0].domain.lower().rstrip(".")


def _load_rsa(private_key: bytes) -> rsa.RSAPrivateKey:
    loaded = serialization.load_pem_private_key(private_key, password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return loaded


def _header_names(message: bytes) -> list[str]:
    head, _, _ = _split_head(message)
    names: list[str] = []
    for line in head.splitlines():
        if line[:1] in (b" ", b"\t") or b":" not in line:
            continue
        names.append(line.split(b":", 1)[0].strip().decode("ascii", "replace").lower())
    return names


def _split_head(message: bytes) -> tuple[bytes, bytes, bytes]:
    match = re.search(rb"\r?\n\r?\n", message)
    if match is None:
        return message, b"", b""
    head_end = match.start() + (2 if message[match.start()] == 0x0D else 1)
    return message[:head_end], message[head_end : match.end()], message[match.end() :]


def _load_ed25519(private_key: bytes) -> nacl.signing.SigningKey:
    try:
        raw = base64.b64decode(private_key.strip(), validate=True)
    except ValueError:
        raise ValueError("ed25519 key is not base64") from None
    if len(raw) != 32:
        raise ValueError("ed25519 key must be 32 bytes")
    return nacl.signing.SigningKey(raw)


def read_rsa_key(key_name: str, path: str) -> bytes:
    """A PEM RSA private key file's content; ConfigError naming ``key_name`` otherwise."""
    rsa_key = _read_key(key_name, path)
    try:
        dkim.crypto.parse_pem_private_key(rsa_key)
        _load_rsa(rsa_key)
    except (dkim.crypto.UnparsableKeyError, ValueError, TypeError):
        raise ConfigError(f"{key_name}: not a PEM RSA private key") from None
    return rsa_key


def _read_key(key_name: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"{key_name}: cannot read {path}: {error.strerror}") from None
