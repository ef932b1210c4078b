"""Every Prometheus metric phigate exports, and the logic behind ``/healthz``.

All metrics live here, prefixed ``phigate_``, in a dedicated :class:`CollectorRegistry`
(not prometheus-client's global one, so a library that registers its own metrics cannot
leak into our ``/metrics`` and tests can build a fresh :class:`Metrics`).

**Labels are bounded and never carry PHI.** No label ever holds an address, a subject, a
user or patient name, a destination domain or a host. Every label value passes through a
:class:`LabelGuard`: fixed sets (results, outcomes, TLS levels...) map anything unknown to
``"other"``; open sets that come from our own code (policy rule names, queue states,
campaign ids) must look like identifiers and are capped in number, after
which new values are counted as ``"other"``. A bug at a call site therefore costs a wrong
label, never a PHI leak or a cardinality explosion.

Call sites use the typed helpers of :data:`METRICS`, e.g.::

    METRICS.record_received("accepted")
    METRICS.record_delivery_attempt("success", tls="verified")
    with METRICS.smtp_session("submission"): ...

Gauges that are a property of the store (queue depth, oldest message, quarantine, PHI
waiting for TLS, campaign complaint ratios) are computed at scrape time from a callback
given to :meth:`Metrics.register_store_gauges`; certificate expiry is read from the PEM
file at scrape time (:meth:`Metrics.register_certificate`), so a certbot renewal shows up
without a restart of the metrics side.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from cryptography import x509
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from phigate import __version__
from phigate.phi_scanner.findings import HEALTH_CATEGORIES, IDENTIFIER_CATEGORIES

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

OTHER = "other"

# --- the fixed label sets (call sites are type-checked against these Literals) -----------

#: What the SMTP server did with a message at the end of DATA.
ReceivedResult = Literal["accepted", "quarantined", "held", "rejected", "tempfailed"]
#: A recipient's state change: ``deferred`` each time, the others once (final states).
RecipientOutcome = Literal["delivered", "deferred", "bounced", "expired", "cancelled"]
MessageClass = Literal["treatment", "operations", "marketing"]
#: One delivery attempt (one SMTP transaction for one or more recipients at one host).
#: ``tls_policy``: the next hop could not meet the TLS level the message needs, nothing sent.
AttemptOutcome = Literal["success", "temporary_failure", "permanent_failure", "tls_policy"]
#: The transport security an attempt actually had.
TlsLevel = Literal["none", "encrypted", "verified"]
FinalOutcome = Literal["delivered", "bounced", "expired"]
ScanVerdict = Literal["none", "identifiers", "phi"]
PolicyAction = Literal["accept", "tag", "quarantine", "hold", "reject", "tempfail"]
AuthFailureReason = Literal["bad_credentials", "locked_out", "tls_required", "malformed"]
LockoutKind = Literal["client_ip", "user"]
Direction = Literal["inbound", "outbound"]
BounceKind = Literal["permanent", "temporary"]
UnsubscribeMethod = Literal["one_click", "mailto"]
SuppressionScope = Literal["marketing", "all"]
SuppressionReason = Literal["hard_bounce", "soft_bounces", "complaint", "unsubscribe", "manual"]
Listener = Literal["submission", "submission_tls", "feedback", "http"]
DkimAlgorithm = Literal["rsa", "ed25519"]
Certificate = Literal["submission", "http", "client"]
#: The TLS policy a delivery session ran under (phigate.mta.delivery.secure.TlsPolicy).
TlsPolicyLabel = Literal["none", "opportunistic", "required", "verify", "mta-sts", "dane"]
#: How a session went: ``success`` or an RFC 8460 result type (no names, no addresses).
TlsSessionResult = Literal[
    "success", "starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
    "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
    "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid"]

# Open label sets: names our code defines (policy rule names, queue states).
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_-]{0,47}\Z")
# Campaign ids are set by the admin who approves the campaign; still never an address.
_CAMPAIGN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")


class LabelGuard:
    """Keeps one label's values bounded: a fixed set, or identifier-like values up to a cap."""

    def __init__(
        self,
        name: str,
        *,
        fixed: Iterable[str] | None = None,
        pattern: re.Pattern[str] = _IDENTIFIER,
        cap: int = 64,
    ) -> None:
        self.name = name
        self.fixed = frozenset(fixed) if fixed is not None else None
        self.pattern = pattern
        self.cap = cap
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._warned = False

    @property
    def known(self) -> tuple[str, ...]:
        """The values to pre-create series for (fixed sets only), ``other`` included."""
        return (*sorted(self.fixed), OTHER) if self.fixed is not None else ()

    def __call__(self, value: str) -> str:
        if self.fixed is not None:
            if value in self.fixed:
                return value
            return self._reject()
        if not isinstance(value, str) or not self.pattern.match(value):
            return self._reject()
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) >= self.cap:
                return self._reject()
            self._seen.add(value)
        return value

    def _reject(self) -> str:
        # Only the label's name is logged (the rejected value might be exactly what must not
        # appear anywhere, an address passed by mistake), and only once: a call site that
        # is wrong is wrong for every message.
        if not self._warned:
            self._warned = True
            log.warning("metrics: unexpected value for label %s counted as %r", self.name, OTHER)
        return OTHER


def _guard(name: str, literal: object) -> LabelGuard:
    return LabelGuard(name, fixed=get_args(literal))


# --- store gauges -------------------------------------------------------------------------


@dataclass(frozen=True)
class DomainSnapshot:
    """Deliveries and complaints of the last day for one large recipient domain."""

    domain: str
    delivered: int
    complaints: int


@dataclass(frozen=True)
class CampaignSnapshot:
    """Counts for one approved marketing campaign (lifetime of the campaign)."""

    campaign_id: str
    delivered: int
    complaints: int


@dataclass(frozen=True)
class StoreSnapshot:
    """What the store reports at scrape time (one cheap aggregate query per field).

    On PostgreSQL with several nodes every node reports the same shared queue; the alert
    rules therefore aggregate these gauges with ``max``, never ``sum``, across instances.
    """

    #: Messages per :class:`~phigate.queue.models.MessageState` value (``done`` optional).
    messages_by_state: Mapping[str, int] = field(default_factory=dict)
    #: Recipients per pending state (``queued``, ``deferred``); final states optional.
    recipients_by_state: Mapping[str, int] = field(default_factory=dict)
    #: Age of the oldest message that still has a queued or deferred recipient; 0 if none.
    oldest_pending_age_seconds: float = 0.0
    #: Messages in quarantine, and how long the oldest of them has waited for an admin.
    quarantined: int = 0
    oldest_quarantined_age_seconds: float = 0.0
    #: PHI recipients deferred because no next hop met the required TLS level.
    phi_waiting_for_tls: int = 0
    campaigns: Sequence[CampaignSnapshot] = ()
    #: Large recipient domains only (see phigate.admin.domain_rates).
    domains: Sequence[DomainSnapshot] = ()
    #: Active suppressions per (scope, reason).
    suppressions: Mapping[tuple[str, str], int] = field(default_factory=dict)
    #: Open bounce incidents (destination domains refusing us) per sender-side reason.
    incidents: Mapping[str, int] = field(default_factory=dict)


StoreSnapshotSource = Callable[[], StoreSnapshot]

_MAX_CAMPAIGNS_PER_SCRAPE = 100
_FEEDBACK_KINDS = frozenset({"bounce", "complaint", "unsubscribe", "other"})


class _StoreCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.source: StoreSnapshotSource | None = None

    def describe(self) -> Iterable[Metric]:
        return []  # do not query the store when the collector is registered

    def collect(self) -> Iterable[Metric]:
        source = self.source
        if source is None:
            return []
        up = GaugeMetricFamily(
            "phigate_store_up", "1 if the last scrape-time query of the store succeeded."
        )
        try:
            snapshot = source()
        except Exception as error:  # a scrape must answer even when the database is down
            # The type only: driver messages can quote SQL parameters (addresses).
            log.warning("metrics: store snapshot failed error=%s", type(error).__name__)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *self._families(snapshot)]

    def _families(self, snap: StoreSnapshot) -> Iterator[Metric]:
        m = self._metrics
        messages = GaugeMetricFamily(
            "phigate_queue_messages", "Messages in the queue by state.", labels=["state"]
        )
        for state, count in _merge(snap.messages_by_state, m.state_label).items():
            messages.add_metric([state], count)
        yield messages
        recipients = GaugeMetricFamily(
            "phigate_queue_recipients", "Recipients in the queue by state.", labels=["state"]
        )
        for state, count in _merge(snap.recipients_by_state, m.state_label).items():
            recipients.add_metric([state], count)
        yield recipients
        yield GaugeMetricFamily(
            "phigate_queue_oldest_message_age_seconds",
            "Age of the oldest active message with a recipient still queued or deferred.",
            value=snap.oldest_pending_age_seconds,
        )
        oldest = GaugeMetricFamily(
            "phigate_queue_oldest_age_seconds",
            "Age of the oldest message per state: waiting (for delivery: queued or deferred "
            "recipients of active mail) and quarantined (waiting for an admin).",
            labels=["state"],
        )
        oldest.add_metric(["waiting"], snap.oldest_pending_age_seconds)
        oldest.add_metric(["quarantined"], snap.oldest_quarantined_age_seconds)
        yield oldest
        yield GaugeMetricFamily(
            "phigate_quarantine_messages", "Messages held in quarantine.", value=snap.quarantined
        )
        yield GaugeMetricFamily(
            "phigate_quarantine_oldest_age_seconds",
            "How long the oldest quarantined message has waited for an admin.",
            value=snap.oldest_quarantined_age_seconds,
        )
        yield GaugeMetricFamily(
            "phigate_phi_waiting_for_tls_recipients",
            "PHI recipients deferred because no next hop met the required TLS level.",
            value=snap.phi_waiting_for_tls,
        )
        ratio = GaugeMetricFamily(
            "phigate_campaign_complaint_ratio",
            "Complaints per delivered recipient, per approved campaign.",
            labels=["campaign"],
        )
        delivered = GaugeMetricFamily(
            "phigate_campaign_delivered_recipients",
            "Recipients delivered, per approved campaign.",
            labels=["campaign"],
        )
        biggest = sorted(snap.campaigns, key=lambda c: c.delivered, reverse=True)
        for campaign in biggest[:_MAX_CAMPAIGNS_PER_SCRAPE]:
            label = m.campaign_label(campaign.campaign_id)
            if label == OTHER:
                continue  # one campaign's ratio under a shared label would be meaningless
            delivered.add_metric([label], campaign.delivered)
            ratio.add_metric([label], campaign.complaints / max(campaign.delivered, 1))
        yield ratio
        yield delivered
        domain_ratio = GaugeMetricFamily(
            "phigate_domain_complaint_ratio",
            "Complaints per delivered recipient over the last day, per recipient domain with "
            "at least 1000 deliveries that day (the large mailbox providers).",
            labels=["domain"],
        )
        for domain in snap.domains[:_MAX_CAMPAIGNS_PER_SCRAPE]:
            domain_ratio.add_metric([domain.domain], domain.complaints / max(domain.delivered, 1))
        yield domain_ratio
        suppressions = GaugeMetricFamily(
            "phigate_suppressions",
            "Active suppressions by scope and reason.",
            labels=["scope", "reason"],
        )
        merged: dict[tuple[str, str], int] = {}
        for (scope, reason), count in snap.suppressions.items():
            key = (m.suppression_scope(scope), m.suppression_reason(reason))
            merged[key] = merged.get(key, 0) + count
        for (scope, reason), count in sorted(merged.items()):
            suppressions.add_metric([scope, reason], count)
        yield suppressions
        yield _incident_gauge(snap.incidents)


#: Sender-side bounce reasons (policy.feedback.reason_names, ReasonGroup.SENDER): the
#: only label values of ``phigate_bounce_incidents``; never a domain or an address.
_INCIDENT_REASONS = frozenset({"blocked", "spamdetected", "authfailure", "requireptr",
                               "badreputation", "securityerror", "rejected",
                               "policyviolation", "toomanyconn", "speeding"})


def _incident_gauge(incidents: Mapping[str, int]) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(
        "phigate_bounce_incidents",
        "Destination domains refusing our mail for a reason on our side (blocklisted IP, "
        "SPF/DKIM, reverse DNS, rejected sender, rate limits), by reason.",
        labels=["reason"],
    )
    merged = {reason: 0 for reason in sorted(_INCIDENT_REASONS)}
    for reason, count in incidents.items():
        key = reason if reason in _INCIDENT_REASONS else "other"
        merged[key] = merged.get(key, 0) + count
    for reason, count in sorted(merged.items()):
        gauge.add_metric([reason], count)
    return gauge


def _merge(counts: Mapping[str, int], guard: LabelGuard) -> dict[str, int]:
    merged: dict[str, int] = {}
    for value, count in counts.items():
        label = guard(value)
        merged[label] = merged.get(label, 0) + count
    return merged


class _CertificateCollector(Collector):
    def __init__(self) -> None:
        self.paths: dict[str, Path] = {}

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        expiry = GaugeMetricFamily(
            "phigate_tls_certificate_expiry_seconds",
            "Seconds until the certificate's notAfter (negative once expired).",
            labels=["certificate"],
        )
        loaded = GaugeMetricFamily(
            "phigate_tls_certificate_load_success",
            "1 if the certificate file could be read and parsed.",
            labels=["certificate"],
        )
        now = time.time()
        for name, path in sorted(self.paths.items()):
            seconds = certificate_seconds_left(path, now=now)
            loaded.add_metric([name], 0 if seconds is None else 1)
            if seconds is not None:
                expiry.add_metric([name], seconds)
        return [expiry, loaded]


def certificate_seconds_left(path: Path, *, now: float | None = None) -> float | None:
    """Seconds until the (first) certificate in the PEM file expires; None if unreadable."""
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as error:
        log.warning("metrics: certificate unreadable path=%s error=%s", path, type(error).__name__)
        return None
    not_after = certificate.not_valid_after_utc.timestamp()
    return not_after - (time.time() if now is None else now)


# --- the metrics ---------------------------------------------------------------------------

_LATENCY_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400,
                    2 * 86400, 5 * 86400)
_SCAN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The metric objects, bound to one registry, and the helpers call sites use."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry

        self.received_result = _guard("result", ReceivedResult)
        self.recipient_outcome = _guard("outcome", RecipientOutcome)
        self.message_class = _guard("class", MessageClass)
        self.attempt_outcome = _guard("outcome", AttemptOutcome)
        self.tls_level = _guard("tls", TlsLevel)
        self.final_outcome = _guard("outcome", FinalOutcome)
        self.scan_verdict = _guard("verdict", ScanVerdict)
        self.policy_action = _guard("action", PolicyAction)
        self.auth_reason = _guard("reason", AuthFailureReason)
        self.lockout_kind = _guard("kind", LockoutKind)
        self.direction = _guard("direction", Direction)
        self.bounce_kind = _guard("kind", BounceKind)
        self.unsubscribe_method = _guard("method", UnsubscribeMethod)
        self.suppression_scope = _guard("scope", SuppressionScope)
        self.suppression_reason = _guard("reason", SuppressionReason)
        self.listener = _guard("listener", Listener)
        self.dkim_algorithm = _guard("algorithm", DkimAlgorithm)
        self.certificate = _guard("certificate", Certificate)
        self.tls_policy = _guard("policy", TlsPolicyLabel)
        self.tls_result = _guard("result", TlsSessionResult)
        # The scanner's own category constants (PERSON, CONDITION, ...): a fixed set.
        self.scan_category = LabelGuard("category", fixed=IDENTIFIER_CATEGORIES | HEALTH_CATEGORIES)
        self.policy_rule = LabelGuard("rule", cap=64)
        self.state_label = LabelGuard("state", cap=24)
        self.campaign_label = LabelGuard("campaign", pattern=_CAMPAIGN_ID, cap=500)

        self.received = Counter(
            "phigate_messages_received", "Messages at the end of DATA, by what we did.",
            ["result"], registry=r,
        )
        self.recipients = Counter(
            "phigate_recipients", "Recipient state changes (deferred counts every deferral).",
            ["outcome", "class"], registry=r,
        )
        self.delivery_attempts = Counter(
            "phigate_delivery_attempts", "Delivery attempts by outcome and transport security.",
            ["outcome", "tls"], registry=r,
        )
        self.delivery_latency = Histogram(
            "phigate_delivery_latency_seconds",
            "From acceptance to a recipient's final state.",
            ["outcome"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.scan_duration = Histogram(
            "phigate_scan_duration_seconds", "Time to scan one message for PHI.",
            buckets=_SCAN_BUCKETS, registry=r,
        )
        self.scan_verdicts = Counter(
            "phigate_scan_verdicts", "Scanned messages by verdict.", ["verdict"], registry=r,
        )
        self.scan_categories = Counter(
            "phigate_scan_categories",
            "Scanned messages in which a finding category occurred (once per message).",
            ["category"], registry=r,
        )
        self.policy_decisions = Counter(
            "phigate_policy_decisions", "Policy rule hits by rule and action.",
            ["rule", "action"], registry=r,
        )
        self.auth_failures = Counter(
            "phigate_auth_failures", "Failed SMTP AUTH attempts.", ["reason"], registry=r,
        )
        self.auth_lockouts = Counter(
            "phigate_auth_lockouts", "Lockouts started, by what was locked out.",
            ["kind"], registry=r,
        )
        self.tls_handshake_failures = Counter(
            "phigate_tls_handshake_failures", "Failed TLS handshakes.", ["direction"], registry=r,
        )
        self.bounces = Counter(
            "phigate_bounces", "Bounce reports received (DSNs and non-standard bounces).",
            ["kind"], registry=r,
        )
        self.feedback_ignored = Counter(
            "phigate_feedback_ignored",
            "Feedback reports that changed nothing, by kind and why: unverified (not tied "
            "to mail we sent, or not from a trusted reporter) or duplicate.",
            ["kind", "reason"], registry=r,
        )
        self.complaints = Counter(
            "phigate_complaints", "Complaint (ARF) reports received.", registry=r,
        )
        self.unsubscribes = Counter(
            "phigate_unsubscribes", "Unsubscribe requests honoured.", ["method"], registry=r,
        )
        self.suppressions_added = Counter(
            "phigate_suppressions_added", "Suppressions added, by scope and reason.",
            ["scope", "reason"], registry=r,
        )
        self.smtp_sessions = Gauge(
            "phigate_smtp_sessions_active", "Open SMTP sessions.", ["listener"], registry=r,
        )
        self.dkim_failures = Counter(
            "phigate_dkim_signing_failures", "Messages that could not be DKIM-signed.",
            ["algorithm"], registry=r,
        )
        self.tls_sessions = Counter(
            "phigate_tls_sessions",
            "Outbound TLS sessions (connections) by TLS policy and result (RFC 8460 types).",
            ["policy", "result"], registry=r,
        )
        self.listener_up = Gauge(
            "phigate_listener_up", "1 while the listener is bound and accepting.",
            ["listener"], registry=r,
        )
        self.build = Info("phigate_build", "The running phigate version.", registry=r)
        self.build.info({"version": __version__})
        ProcessCollector(namespace="phigate", registry=r)
        self._store = _StoreCollector(self)
        self._certificates = _CertificateCollector()
        r.register(self._store)
        r.register(self._certificates)
        self._precreate()

    def _precreate(self) -> None:
        # Series that exist at 0 from the start make rate() and the alert rules work before
        # the first event, and make a missing scrape distinguishable from "nothing happened".
        for result in self.received_result.known:
            self.received.labels(result=result)
        for outcome in self.recipient_outcome.known:
            for message_class in self.message_class.known:
                self.recipients.labels(outcome=outcome, **{"class": message_class})
        for outcome in self.attempt_outcome.known:
            for tls in self.tls_level.known:
                self.delivery_attempts.labels(outcome=outcome, tls=tls)
        for verdict in self.scan_verdict.known:
            self.scan_verdicts.labels(verdict=verdict)
        for category in self.scan_category.known:
            self.scan_categories.labels(category=category)
        for reason in self.auth_reason.known:
            self.auth_failures.labels(reason=reason)
        for kind in self.lockout_kind.known:
            self.auth_lockouts.labels(kind=kind)
        for direction in self.direction.known:
            self.tls_handshake_failures.labels(direction=direction)
        for kind in self.bounce_kind.known:
            self.bounces.labels(kind=kind)
        for method in self.unsubscribe_method.known:
            self.unsubscribes.labels(method=method)
        for algorithm in self.dkim_algorithm.known:
            self.dkim_failures.labels(algorithm=algorithm)
        for policy in self.tls_policy.known:
            for result in self.tls_result.known:
                self.tls_sessions.labels(policy=policy, result=result)

    # --- helpers for call sites -----------------------------------------------------------

    def record_received(self, result: ReceivedResult) -> None:
        self.received.labels(result=self.received_result(result)).inc()

    def record_recipient(self, outcome: RecipientOutcome, message_class: str) -> None:
        """A recipient was delivered, deferred, bounced, expired or cancelled."""
        self.recipients.labels(
            outcome=self.recipient_outcome(outcome), **{"class": self.message_class(message_class)}
        ).inc()

    def record_delivery_attempt(self, outcome: AttemptOutcome, *, tls: TlsLevel) -> None:
        self.delivery_attempts.labels(
            outcome=self.attempt_outcome(outcome), tls=self.tls_level(tls)
        ).inc()

    def record_tls_session(self, policy: str, result: str) -> None:
        """One outbound TLS session: its policy and ``success`` or an RFC 8460 result."""
        self.tls_sessions.labels(policy=self.tls_policy(policy),
                                 result=self.tls_result(result)).inc()

    def observe_delivery_latency(self, seconds: float, outcome: FinalOutcome) -> None:
        """Acceptance to final state, for one recipient."""
        self.delivery_latency.labels(outcome=self.final_outcome(outcome)).observe(max(seconds, 0))

    def observe_scan(self, seconds: float, verdict: str, categories: Iterable[str] = ()) -> None:
        """One scanned message: its duration, verdict and (distinct) finding categories."""
        self.scan_duration.observe(seconds)
        self.scan_verdicts.labels(verdict=self.scan_verdict(verdict)).inc()
        for category in {self.scan_category(c) for c in categories}:
            self.scan_categories.labels(category=category).inc()

    def record_policy_decision(self, rule: str, action: str) -> None:
        self.policy_decisions.labels(
            rule=self.policy_rule(rule), action=self.policy_action(action)
        ).inc()

    def record_auth_failure(self, reason: AuthFailureReason = "bad_credentials") -> None:
        self.auth_failures.labels(reason=self.auth_reason(reason)).inc()

    def record_auth_lockout(self, kind: LockoutKind) -> None:
        self.auth_lockouts.labels(kind=self.lockout_kind(kind)).inc()

    def record_tls_handshake_failure(self, direction: Direction) -> None:
        self.tls_handshake_failures.labels(direction=self.direction(direction)).inc()

    def record_bounce(self, *, permanent: bool) -> None:
        self.bounces.labels(kind="permanent" if permanent else "temporary").inc()

    def record_complaint(self) -> None:
        self.complaints.inc()

    def record_feedback_ignored(self, kind: str, trust: str) -> None:
        """A feedback report that changed nothing: not tied to our mail, or seen before."""
        self.feedback_ignored.labels(kind=kind if kind in _FEEDBACK_KINDS else "other",
                                     reason=trust).inc()

    def record_unsubscribe(self, method: UnsubscribeMethod) -> None:
        self.unsubscribes.labels(method=self.unsubscribe_method(method)).inc()

    def record_suppression_added(self, scope: str, reason: str) -> None:
        """``reason`` is mapped to a fixed set: the CLI's free-text reason is not a label."""
        self.suppressions_added.labels(
            scope=self.suppression_scope(scope), reason=self.suppression_reason(reason)
        ).inc()

    def record_dkim_failure(self, algorithm: DkimAlgorithm = "rsa") -> None:
        self.dkim_failures.labels(algorithm=self.dkim_algorithm(algorithm)).inc()

    @contextmanager
    def smtp_session(self, listener: Listener = "submission") -> Iterator[None]:
        """Counts an open SMTP session for as long as the ``with`` block runs."""
        gauge = self.smtp_sessions.labels(listener=self.listener(listener))
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def set_listener_up(self, listener: Listener, up: bool) -> None:
        self.listener_up.labels(listener=self.listener(listener)).set(1 if up else 0)

    def register_store_gauges(self, source: StoreSnapshotSource | None) -> None:
        """Compute the store gauges from ``source()`` at every scrape (None: stop).

        ``source`` runs synchronously in the scraping thread (:func:`render_latest` is run
        off the event loop by the HTTP handler); if it raises, ``phigate_store_up`` is 0.
        """
        self._store.source = source

    def register_certificate(self, name: Certificate, path: Path) -> None:
        """Export ``phigate_tls_certificate_expiry_seconds{certificate=name}`` for ``path``."""
        self._certificates.paths[self.certificate(name)] = path

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


#: The process-wide metrics (prometheus-client metrics are process-global by nature).
METRICS = Metrics()


def render_latest(metrics: Metrics = METRICS) -> tuple[bytes, str]:
    """The exposition text and its Content-Type, for the ``/metrics`` handler."""
    return metrics.render()


# --- /healthz ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthReport:
    checks: Mapping[str, bool]

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    @property
    def http_status(self) -> int:
        return 200 if self.ok else 503

    def body(self) -> bytes:
        status = "ok" if self.ok else "unavailable"
        return json.dumps({"status": status, "checks": dict(self.checks)}).encode()


class HealthState:
    """``/healthz`` is 200 only when the database answers and every expected listener is up.

    The server calls :meth:`listener_up` after binding each listener and
    :meth:`listener_down` when it stops accepting (shutdown), so a draining node turns
    unhealthy before it goes away. ``database_check`` is a blocking callable (e.g. the
    store's ``SELECT 1``) that raises when the database is unreachable; it runs in a
    thread with a timeout, so a hung database makes the check fail instead of hang.
    """

    def __init__(
        self,
        *,
        database_check: Callable[[], object],
        listeners: Iterable[Listener],
        timeout_seconds: float = 2.0,
        metrics: Metrics = METRICS,
    ) -> None:
        self._database_check = database_check
        self._timeout = timeout_seconds
        self._metrics = metrics
        self._listeners: dict[str, bool] = {}
        for name in listeners:
            self._listeners[name] = False
            metrics.set_listener_up(name, False)

    def listener_up(self, name: Listener) -> None:
        self._listeners[name] = True
        self._metrics.set_listener_up(name, True)

    def listener_down(self, name: Listener) -> None:
        self._listeners[name] = False
        self._metrics.set_listener_up(name, False)

    async def check(self) -> HealthReport:
        checks = {"database": await self._database_ok()}
        checks.update({f"listener:{name}": up for name, up in self._listeners.items()})
        return HealthReport(checks)

    async def _database_ok(self) -> bool:
        try:
            await asyncio.wait_for(asyncio.to_thread(self._database_check), self._timeout)
        except Exception as error:  # any failure means "not healthy"
            log.warning("healthz: database check failed error=%s", type(error).__name__)
            return False
        return True


def add_routes(app: web.Application, health: HealthState, metrics: Metrics = METRICS) -> None:
    """Serve ``GET /metrics`` and ``GET /healthz`` from an aiohttp application."""
    from aiohttp import web

    async def metrics_handler(request: web.Request) -> web.Response:
        # Off the event loop: the store gauges run a (blocking) query at scrape time.
        body, content_type = await asyncio.to_thread(metrics.render)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthz_handler(request: web.Request) -> web.Response:
        report = await health.check()
        return web.Response(
            body=report.body(), status=report.http_status,
            headers={"Content-Type": "application/json", "Cache-Control": "no-store"},
        )

    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz_handler)
