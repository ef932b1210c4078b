"""Transport security for the SMTP client: per-host TLS plans, the DANE check after the
handshake, REQUIRETLS, and counting sessions for TLS-RPT and the metrics.

:class:`DeliverySecurity` is what :class:`phigate.mta.delivery.client.SmtpTransport` asks, per
message and destination, which hosts may be used and how (:meth:`plan`), and tells how
each TLS session went (:meth:`count`). It holds the MTA-STS policies (store-cached), the
DNSSEC-validating resolver for TLSA lookups and the TLS-RPT counter; each is optional.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

import aiosmtplib
import dns.asyncresolver
from sqlalchemy import Engine

from phigate.config import Settings
from phigate.mta.delivery.dane import (
    DaneState,
    TlsaLookup,
    lookup_tlsa,
    make_validating_resolver,
    matches,
    peer_chain,
)
from phigate.mta.delivery.mta_sts import MtaSts, StoreStsCache, StsFailure, StsLookup
from phigate.mta.delivery.outcomes import DeliveryError, TlsPolicyError
from phigate.mta.delivery.routing import NextHop, make_resolver
from phigate.mta.delivery.secure import Demands, HopPolicy, TlsPolicy, hop_policy, result_type
from phigate.mta.delivery.tls_policy import TlsContexts, TlsLevel
from phigate.mta.delivery.tlsrpt import (
    PolicyType,
    ReportContext,
    ResultType,
    TlsReporter,
    TlsRptCounter,
)
from phigate.observability.metrics import METRICS
from phigate.queue.store import SqlQueueStore
from phigate.queue.transport_store import TransportStore

T = TypeVar("T")

#: Called for every TLS session: (policy, "success" or an RFC 8460 result type).
SessionObserver = Callable[[TlsPolicy, str], None]

_STS_RESULTS = {StsFailure.FETCH_ERROR: ResultType.STS_POLICY_FETCH_ERROR,
                StsFailure.INVALID: ResultType.STS_POLICY_INVALID,
                StsFailure.WEBPKI_INVALID: ResultType.STS_WEBPKI_INVALID}


class DaneMismatchError(TlsPolicyError):
    """TLSA records exist and are validated, and the certificate matches none of them."""

    def __init__(self, host: str) -> None:
        super().__init__(f"DANE: the certificate of {host} matches none of its TLSA records")


class RequireTlsError(DeliveryError):
    """RFC 8689 4.2.1: the next hop does not offer REQUIRETLS."""

    def __init__(self, host: str) -> None:
        super().__init__(550, f"5.7.30 REQUIRETLS support required: {host} does not offer "
                         "it", permanent=True)


@dataclass(frozen=True)
class HopPlan:
    hop: NextHop
    policy: HopPolicy


@dataclass
class DeliverySecurity:
    mta_sts: MtaSts | None = None
    validating_resolver: dns.asyncresolver.Resolver | None = None
    counter: TlsRptCounter | None = None
    observer: SessionObserver | None = None
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: (policy type, id) -> text lines, for the reports' ``policy-string``.
    policy_lines: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    async def plan(self, domain: str, hops: Sequence[NextHop], demands: Demands
                   ) -> list[HopPlan]:
        """How to treat each host of ``domain``, in the order to try them."""
        if any(hop.smarthost for hop in hops):
            # The admin's relay: the configured level (raised for REQUIRETLS), no
            # destination policies (they name the destination's MX hosts, not the relay).
            smarthost = Demands(demands.base, demands.phi, True, demands.require_tls,
                                demands.relaxed)
            return [HopPlan(hop, hop_policy(hop.name, smarthost, StsLookup(),
                                            TlsaLookup(DaneState.OFF)))
                    for hop in hops]
        sts = await self.mta_sts.lookup(domain) if self.mta_sts is not None else StsLookup()
        if sts.failure is not None and self.counter is not None:
            self.counter.count(self.now(), domain, PolicyType.STS,
                               result=_STS_RESULTS[sts.failure])
        if sts.policy is not None:
            self.policy_lines[("sts", sts.policy.policy_id)] = sts.policy.lines()
        plans = []
        for hop in hops:
            tlsa = await lookup_tlsa(self.validating_resolver, hop.name)
            plans.append(HopPlan(hop, hop_policy(hop.name, demands, sts, tlsa)))
            if tlsa.records:
                self.policy_lines[("tlsa", "")] = [str(r) for r in tlsa.records]
        return plans

    def count(self, domain: str, plan: HopPlan, result: ResultType | None) -> None:
        """One TLS session to ``plan``'s host: ``result`` None for a success."""
        policy = plan.policy
        if self.observer is not None:
            self.observer(policy.policy, str(result) if result is not None else "success")
        if self.counter is None or policy.report is None:
            return
        self.counter.count(self.now(), domain, policy.report, policy_id=policy.report_id,
                           result=result, mx=plan.hop.name)

    async def open_counted(self, domain: str, plan: HopPlan,
                           open_plan: Callable[[HopPlan], Awaitable[T]]) -> T:
        """``open_plan(plan)``, counting the TLS session; under MTA-STS ``testing`` first
        try what ``enforce`` would demand and report its failure, then deliver as usual."""
        testing = plan.policy.testing
        if testing is not None and not plan.policy.policy.verified:
            strict = HopPlan(plan.hop, replace(plan.policy, policy=TlsPolicy.MTA_STS))
            if not testing.allows(plan.hop.name):
                self.count(domain, plan, self.refusal_result(strict))
            else:
                try:
                    connection = await open_plan(strict)
                except Exception as error:
                    result = session_result(error)
                    if result is None:
                        raise
                    self.count(domain, plan, result)
                else:
                    self.count(domain, plan, None)
                    return connection
        try:
            connection = await open_plan(plan)
        except Exception as error:
            result = session_result(error)
            if result is not None:
                self.count(domain, plan, result)
            raise
        self.count(domain, plan, None)
        return connection

    async def aclose(self) -> None:
        if self.mta_sts is not None:
            await self.mta_sts.aclose()

    def refusal_result(self, plan: HopPlan) -> ResultType:
        if plan.policy.policy is TlsPolicy.DANE:
            return ResultType.DNSSEC_INVALID
        return ResultType.VALIDATION_FAILURE


def check_after_handshake(smtp: aiosmtplib.SMTP, plan: HopPlan, *, require_tls: bool) -> bool:
    """Checks once TLS is up; True when the certificate counts as verified.

    DANE: the presented chain must match the TLSA records (RFC 7672 3). REQUIRETLS: the
    host must offer it (RFC 8689 4.2.1). Raises :class:`DaneMismatchError` or
    :class:`RequireTlsError`.
    """
    verified = plan.policy.policy.verified
    if plan.policy.policy is TlsPolicy.DANE:
        ssl_object = smtp.get_transport_info("ssl_object")
        chain = peer_chain(ssl_object) if isinstance(ssl_object, ssl.SSLObject) else []
        if not matches(plan.policy.tlsa, chain, plan.hop.name):
            raise DaneMismatchError(plan.hop.name)
    if require_tls and not smtp.supports_extension("requiretls"):
        raise RequireTlsError(plan.hop.name)
    return verified


def session_result(error: BaseException) -> ResultType | None:
    """The TLS-RPT result type of a failed connection, or None when TLS was not the cause
    (refused connections, timeouts and SMTP replies are no TLS failures)."""
    if isinstance(error, DaneMismatchError):
        return ResultType.VALIDATION_FAILURE
    if isinstance(error, TlsPolicyError) and "offers no STARTTLS" in error.text:
        return ResultType.STARTTLS_NOT_SUPPORTED
    if isinstance(error, ssl.SSLError):
        return result_type(error)
    return None


def build_security(settings: Settings, store: object, *,
                   now: Callable[[], datetime] | None = None) -> DeliverySecurity:
    """MTA-STS (cached in ``store``'s database), DANE (with ``[delivery] dnssec_resolver``)
    and TLS-RPT counting, as ``settings`` ask. A store without an engine (a test double)
    gets no MTA-STS: there is nowhere to keep the policies."""
    delivery = settings.delivery
    clock = now or (lambda: datetime.now(UTC))
    engine = getattr(store, "engine", None)
    mta_sts = None
    if delivery.mta_sts and not delivery.smarthost and isinstance(engine, Engine):
        resolver = make_resolver(delivery.dns_servers, timeout=delivery.connect_timeout_seconds)
        mta_sts = MtaSts(resolver, StoreStsCache(TransportStore(engine)),
                         TlsContexts(delivery.ca_file).for_level(TlsLevel.VERIFY),
                         port=delivery.mta_sts_port, now=clock)
    return DeliverySecurity(
        mta_sts=mta_sts,
        validating_resolver=make_validating_resolver(
            delivery.dnssec_resolver, timeout=delivery.connect_timeout_seconds),
        counter=TlsRptCounter() if delivery.tls_reports else None,
        observer=lambda policy, result: METRICS.record_tls_session(str(policy), result),
        now=clock)


def build_reporter(settings: Settings, store: object,
                   security: DeliverySecurity) -> TlsReporter | None:
    """The daily TLS-RPT sender for ``serve`` (None with ``tls_reports`` off or no store)."""
    engine = getattr(store, "engine", None)
    if security.counter is None or not isinstance(engine, Engine) or not isinstance(
            store, SqlQueueStore):
        return None
    domain = settings.server.domain
    return TlsReporter(
        security.counter, TransportStore(engine), store,
        make_resolver(settings.delivery.dns_servers,
                      timeout=settings.delivery.connect_timeout_seconds),
        ReportContext(domain, f"mailto:postmaster@{domain}", settings.server.hostname),
        sender=f"TLS reports <tlsrpt-noreply@{domain}>", policy_lines=security.policy_lines)
