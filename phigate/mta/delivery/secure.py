"""The TLS policy of one delivery to one host, as data, and what a failure of it was.

:func:`hop_policy` decides, per MX host, which :class:`TlsPolicy` applies:

1. ``TLS-Required: No`` (RFC 8689 5) on mail without PHI: the configured level only;
   destination policies (DANE, MTA-STS) are set aside as the sender asked.
2. DANE (validated TLSA records for the host) takes precedence over everything else
   (RFC 8461 2: "DANE over MTA-STS"); a failed DNSSEC lookup makes the host unusable.
3. MTA-STS ``enforce``: only hosts the policy lists, over verified TLS; any other host is
   never connected to. ``testing``: the configured level, and failures are reported.
4. Otherwise the configured level (``tls_default``/``tls_phi``/per-domain ``tls``).

PHI needs at least ``verify``, ``mta-sts`` or ``dane``, unless the admin set a per-domain
policy (a BAA partner's private certificate): then that policy. A message sent with
REQUIRETLS (RFC 8689) needs verified TLS as well, and a host that offers REQUIRETLS.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from enum import StrEnum

from phigate.mta.delivery.dane import DaneState, TlsaLookup, TlsaRecord
from phigate.mta.delivery.mta_sts import StsLookup, StsMode, StsPolicy
from phigate.mta.delivery.tls_policy import TlsLevel
from phigate.mta.delivery.tlsrpt import PolicyType, ResultType


class TlsPolicy(StrEnum):
    NONE = "none"
    OPPORTUNISTIC = "opportunistic"
    REQUIRED = "required"
    VERIFY = "verify"
    MTA_STS = "mta-sts"
    DANE = "dane"

    @property
    def verified(self) -> bool:
        """The certificate is checked (WebPKI for the host name, or DANE)."""
        return self in (TlsPolicy.VERIFY, TlsPolicy.MTA_STS, TlsPolicy.DANE)

    @property
    def needs_tls(self) -> bool:
        return self not in (TlsPolicy.NONE, TlsPolicy.OPPORTUNISTIC)

    @property
    def level(self) -> TlsLevel:
        """The SSL context level: DANE checks the certificate itself, after the handshake."""
        if self in (TlsPolicy.VERIFY, TlsPolicy.MTA_STS):
            return TlsLevel.VERIFY
        if self is TlsPolicy.DANE or self is TlsPolicy.REQUIRED:
            return TlsLevel.REQUIRED
        return TlsLevel.OPPORTUNISTIC

    @classmethod
    def of_level(cls, level: TlsLevel) -> TlsPolicy:
        return {TlsLevel.OPPORTUNISTIC: cls.OPPORTUNISTIC, TlsLevel.REQUIRED: cls.REQUIRED,
                TlsLevel.VERIFY: cls.VERIFY}[level]


@dataclass(frozen=True)
class HopPolicy:
    """How to talk to one host (or why not to)."""

    policy: TlsPolicy
    tlsa: tuple[TlsaRecord, ...] = ()
    #: Never connect to this host; the (PHI-free) reason.
    refusal: str | None = None
    #: What TLS-RPT counts this session under (None: not counted).
    report: PolicyType | None = None
    report_id: str = ""
    #: MTA-STS testing: check verified TLS too, report a failure, deliver as usual.
    testing: StsPolicy | None = None


@dataclass(frozen=True)
class Demands:
    """What the message asks of the route."""

    base: TlsLevel
    phi: bool = False
    #: The admin set this destination's TLS explicitly (``[delivery.domains.X] tls``).
    admin_policy: bool = False
    require_tls: bool = False
    #: ``TLS-Required: No`` on a message without PHI.
    relaxed: bool = False


def hop_policy(host: str, demands: Demands, sts: StsLookup, tlsa: TlsaLookup) -> HopPolicy:
    """The policy for ``host`` (an MX name) under ``demands`` (see the module doc)."""
    base = TlsPolicy.of_level(demands.base)
    if demands.relaxed and not demands.phi and not demands.require_tls:
        return HopPolicy(base)
    if tlsa.state is DaneState.SECURE:
        return HopPolicy(TlsPolicy.DANE, tlsa.records, report=PolicyType.TLSA)
    if tlsa.state is DaneState.FAILED:
        return HopPolicy(TlsPolicy.DANE, refusal=f"DNSSEC lookup of the TLSA records of "
                         f"{host} failed", report=PolicyType.TLSA)
    policy = sts.policy
    if policy is not None and policy.mode is StsMode.ENFORCE:
        if not policy.allows(host):
            return HopPolicy(TlsPolicy.MTA_STS, refusal=f"{host} is not an MX host of the "
                             "destination's MTA-STS policy", report=PolicyType.STS,
                             report_id=policy.policy_id)
        return HopPolicy(TlsPolicy.MTA_STS, report=PolicyType.STS, report_id=policy.policy_id)
    if (demands.phi and not demands.admin_policy) or demands.require_tls:
        base = max(base, TlsPolicy.VERIFY, key=_strength)
    if policy is not None and policy.mode is StsMode.TESTING:
        return HopPolicy(base, report=PolicyType.STS, report_id=policy.policy_id,
                         testing=policy)
    return HopPolicy(base)


_ORDER = list(TlsPolicy)


def _strength(policy: TlsPolicy) -> int:
    return _ORDER.index(policy)


def tls_optional(message: bytes) -> bool:
    """The message asks, with ``TLS-Required: No`` (RFC 8689 5), that destination TLS
    policies be set aside (honoured by :func:`hop_policy` only for mail without PHI)."""
    head = re.split(rb"\r?\n\r?\n", message, maxsplit=1)[0]
    return bool(_TLS_REQUIRED_NO.search(head))


_TLS_REQUIRED_NO = re.compile(rb"^tls-required[ \t]*:[ \t]*no[ \t]*\r?$",
                              re.IGNORECASE | re.MULTILINE)


def result_type(error: BaseException | None, *, starttls_missing: bool = False
                ) -> ResultType:
    """The RFC 8460 result type of a failed TLS session."""
    if starttls_missing:
        return ResultType.STARTTLS_NOT_SUPPORTED
    if isinstance(error, ssl.SSLCertVerificationError):
        code = error.verify_code
        if code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
            return ResultType.CERTIFICATE_HOST_MISMATCH
        if code == 10:  # X509_V_ERR_CERT_HAS_EXPIRED
            return ResultType.CERTIFICATE_EXPIRED
        return ResultType.CERTIFICATE_NOT_TRUSTED
    return ResultType.VALIDATION_FAILURE
