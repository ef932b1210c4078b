"""Every metric family phigate exports, declared as data: name, help, type and labels.

The families updated as events happen (counters, gauges, histograms) are built into one
registry by :class:`~phigate.observability.metrics.Metrics`; the ``scraped`` ones are
computed from the store or the certificate files at every scrape by the collectors of
:mod:`phigate.observability.collectors`. A new metric is one row here (and, for an event
family, one attribute and one helper on ``Metrics``).

``precreate`` names, per label, the values whose series exist at 0 from the start: that
makes ``rate()`` and the alert rules work before the first event, and makes a missing
scrape distinguishable from "nothing happened".
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics import MetricWrapperBase

from phigate.observability import labels as L

_M = TypeVar("_M", bound=MetricWrapperBase)

Kind = Literal["counter", "gauge", "histogram", "info"]


@dataclass(frozen=True)
class Family:
    """One metric family: what a Prometheus user reads in ``# HELP`` and ``# TYPE``."""

    name: str
    help: str
    kind: Kind
    labels: tuple[str, ...] = ()
    #: Per label (in order), the values whose series exist from the start; () = none.
    precreate: tuple[tuple[str, ...], ...] = ()
    buckets: tuple[float, ...] = ()
    #: Computed by a collector at scrape time, not updated as events happen.
    scraped: bool = False

    def gauge_family(self, value: float | None = None) -> GaugeMetricFamily:
        """A scrape-time family (a collector fills its samples)."""
        _expect(self, "gauge", scraped=True)
        if value is not None:
            return GaugeMetricFamily(self.name, self.help, value=value)
        return GaugeMetricFamily(self.name, self.help, labels=list(self.labels))


def _expect(family: Family, kind: Kind, *, scraped: bool) -> None:
    # A row built the wrong way would export a family other than its declared type.
    if family.kind != kind or family.scraped != scraped:
        raise TypeError(f"{family.name} is a {family.kind} (scraped={family.scraped})")


def _fixed(*literals: object) -> tuple[tuple[str, ...], ...]:
    return tuple(L.known(L.values_of(literal)) for literal in literals)


_LATENCY_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400,
                    2 * 86400, 5 * 86400)
_SCAN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# --- updated as events happen ---------------------------------------------------------------

RECEIVED = Family("phigate_messages_received", "Messages at the end of DATA, by what we did.",
                  "counter", ("result",), _fixed(L.ReceivedResultLabel))
RECIPIENTS = Family("phigate_recipients",
                    "Recipient state changes (deferred counts every deferral).",
                    "counter", ("outcome", "class"),
                    _fixed(L.RecipientOutcomeLabel, L.MessageClassLabel))
DELIVERY_ATTEMPTS = Family("phigate_delivery_attempts",
                           "Delivery attempts by outcome and transport security.",
                           "counter", ("outcome", "tls"),
                           _fixed(L.AttemptOutcomeLabel, L.TlsLevelLabel))
DELIVERY_LATENCY = Family("phigate_delivery_latency_seconds",
                          "From acceptance to a recipient's final state.",
                          "histogram", ("outcome",), buckets=_LATENCY_BUCKETS)
SCAN_DURATION = Family("phigate_scan_duration_seconds", "Time to scan one message for PHI.",
                       "histogram", buckets=_SCAN_BUCKETS)
SCAN_VERDICTS = Family("phigate_scan_verdicts", "Scanned messages by verdict.",
                       "counter", ("verdict",), _fixed(L.ScanVerdictLabel))
SCAN_CATEGORIES = Family("phigate_scan_categories",
                         "Scanned messages in which a finding category occurred (once per "
                         "message).", "counter", ("category",), (L.known(L.SCAN_CATEGORIES),))
POLICY_DECISIONS = Family("phigate_policy_decisions", "Policy rule hits by rule and action.",
                          "counter", ("rule", "action"))
AUTH_FAILURES = Family("phigate_auth_failures", "Failed SMTP AUTH attempts.",
                       "counter", ("reason",), _fixed(L.AuthFailureReasonLabel))
AUTH_LOCKOUTS = Family("phigate_auth_lockouts",
                       "AUTH lockouts started: kind user_ip, a user name refused from one "
                       "client address; kind user, a user name's attempts from every address "
                       "slowed (tarpit, never refused).",
                       "counter", ("kind",), _fixed(L.LockoutKindLabel))
TLS_HANDSHAKE_FAILURES = Family("phigate_tls_handshake_failures", "Failed TLS handshakes.",
                                "counter", ("direction",), _fixed(L.DirectionLabel))
BOUNCES = Family("phigate_bounces", "Bounce reports received (DSNs and non-standard bounces).",
                 "counter", ("kind",), _fixed(L.BounceKindLabel))
FEEDBACK_IGNORED = Family("phigate_feedback_ignored",
                          "Feedback reports that changed nothing, by kind and why: unverified "
                          "(not tied to mail we sent, or not from a trusted reporter) or "
                          "duplicate.", "counter", ("kind", "reason"))
COMPLAINTS = Family("phigate_complaints", "Complaint (ARF) reports received.", "counter")
UNSUBSCRIBES = Family("phigate_unsubscribes", "Unsubscribe requests honoured.",
                      "counter", ("method",), _fixed(L.UnsubscribeMethodLabel))
SUPPRESSIONS_ADDED = Family("phigate_suppressions_added",
                            "Suppressions added, by scope and reason.",
                            "counter", ("scope", "reason"))
SMTP_SESSIONS = Family("phigate_smtp_sessions_active", "Open SMTP sessions.",
                       "gauge", ("listener",))
DKIM_FAILURES = Family("phigate_dkim_signing_failures",
                       "Messages that could not be DKIM-signed.",
                       "counter", ("algorithm",), _fixed(L.DkimAlgorithmLabel))
UNPROCESSABLE = Family("phigate_messages_unprocessable",
                        "Messages delivery could not process: bounced (a header over a bound "
                        "or malformed) or parked corrupt (undecryptable, DKIM, errors).",
                        "counter", ("reason",), _fixed(L.UnprocessableReasonLabel))
TLS_SESSIONS = Family("phigate_tls_sessions",
                      "Outbound TLS sessions (connections) by TLS policy and result "
                      "(RFC 8460 types).", "counter", ("policy", "result"),
                      _fixed(L.TlsPolicyLabel, L.TlsSessionResultLabel))
LISTENER_UP = Family("phigate_listener_up", "1 while the listener is bound and accepting.",
                     "gauge", ("listener",))
BUILD = Family("phigate_build", "The running phigate version.", "info")
DELIVERY_PROCESS_RESTARTS = Family(
    "phigate_delivery_process_restarts",
    "Times serve's delivery child process ended unexpectedly and was started again.",
    "counter")

# --- computed at scrape time (phigate.observability.collectors) ------------------------------

STORE_UP = Family("phigate_store_up", "1 if the last scrape-time query of the store succeeded.",
                  "gauge", scraped=True)
QUEUE_MESSAGES = Family("phigate_queue_messages", "Messages in the queue by state.",
                        "gauge", ("state",), scraped=True)
QUEUE_RECIPIENTS = Family("phigate_queue_recipients", "Recipients in the queue by state.",
                          "gauge", ("state",), scraped=True)
QUEUE_OLDEST_MESSAGE_AGE = Family(
    "phigate_queue_oldest_message_age_seconds",
    "Age of the oldest active message with a recipient still queued or deferred.",
    "gauge", scraped=True)
QUEUE_OLDEST_AGE = Family(
    "phigate_queue_oldest_age_seconds",
    "Age of the oldest message per state: waiting (for delivery: queued or deferred "
    "recipients of active mail) and quarantined (waiting for an admin).",
    "gauge", ("state",), scraped=True)
QUARANTINE_MESSAGES = Family("phigate_quarantine_messages", "Messages held in quarantine.",
                             "gauge", scraped=True)
QUARANTINE_OLDEST_AGE = Family("phigate_quarantine_oldest_age_seconds",
                               "How long the oldest quarantined message has waited for an "
                               "admin.", "gauge", scraped=True)
PHI_WAITING_FOR_TLS = Family("phigate_phi_waiting_for_tls_recipients",
                             "PHI recipients deferred because no next hop met the required TLS "
                             "level.", "gauge", scraped=True)
CAMPAIGN_COMPLAINT_RATIO = Family("phigate_campaign_complaint_ratio",
                                  "Complaints per delivered recipient, per approved campaign.",
                                  "gauge", ("campaign",), scraped=True)
CAMPAIGN_DELIVERED = Family("phigate_campaign_delivered_recipients",
                            "Recipients delivered, per approved campaign.",
                            "gauge", ("campaign",), scraped=True)
DOMAIN_COMPLAINT_RATIO = Family(
    "phigate_domain_complaint_ratio",
    "Complaints per delivered recipient over the last day, per recipient domain with "
    "at least 1000 deliveries that day (the large mailbox providers).",
    "gauge", ("domain",), scraped=True)
SUPPRESSIONS = Family("phigate_suppressions", "Active suppressions by scope and reason.",
                      "gauge", ("scope", "reason"), scraped=True)
BOUNCE_INCIDENTS = Family(
    "phigate_bounce_incidents",
    "Destination domains refusing our mail for a reason on our side (blocklisted IP, "
    "SPF/DKIM, reverse DNS, rejected sender, rate limits), by reason.",
    "gauge", ("reason",), scraped=True)
CERTIFICATE_EXPIRY = Family("phigate_tls_certificate_expiry_seconds",
                            "Seconds until the certificate's notAfter (negative once expired).",
                            "gauge", ("certificate",), scraped=True)
CERTIFICATE_LOADED = Family("phigate_tls_certificate_load_success",
                            "1 if the certificate file could be read and parsed.",
                            "gauge", ("certificate",), scraped=True)
# Only where serve runs delivery in a child process (absent otherwise, so an alert on them
# never fires for a single process or a delivery-only unit).
DELIVERY_PROCESS_UP = Family("phigate_delivery_process_up",
                             "1 while serve's delivery child process runs (0: it ended and "
                             "is being restarted after a back-off).", "gauge", scraped=True)
DELIVERY_PROCESS_METRICS_UP = Family(
    "phigate_delivery_process_metrics_up",
    "1 if this scrape includes the delivery child's metrics (0: it did not answer in time; "
    "its counters are missing from this scrape).", "gauge", scraped=True)

#: Every family, in the order ``/metrics`` shows them (the ``process_*`` ones aside).
FAMILIES: tuple[Family, ...] = (
    RECEIVED, RECIPIENTS, DELIVERY_ATTEMPTS, DELIVERY_LATENCY, SCAN_DURATION, SCAN_VERDICTS,
    SCAN_CATEGORIES, POLICY_DECISIONS, AUTH_FAILURES, AUTH_LOCKOUTS, TLS_HANDSHAKE_FAILURES,
    BOUNCES, FEEDBACK_IGNORED, COMPLAINTS, UNSUBSCRIBES, SUPPRESSIONS_ADDED, SMTP_SESSIONS,
    DKIM_FAILURES, TLS_SESSIONS, LISTENER_UP, BUILD, DELIVERY_PROCESS_RESTARTS,
    STORE_UP, QUEUE_MESSAGES, QUEUE_RECIPIENTS, QUEUE_OLDEST_MESSAGE_AGE, QUEUE_OLDEST_AGE,
    QUARANTINE_MESSAGES, QUARANTINE_OLDEST_AGE, PHI_WAITING_FOR_TLS, CAMPAIGN_COMPLAINT_RATIO,
    CAMPAIGN_DELIVERED, DOMAIN_COMPLAINT_RATIO, SUPPRESSIONS, BOUNCE_INCIDENTS,
    CERTIFICATE_EXPIRY, CERTIFICATE_LOADED, DELIVERY_PROCESS_UP, DELIVERY_PROCESS_METRICS_UP,
)


# --- building the event families into a registry ----------------------------------------------


def _precreated(metric: _M, family: Family) -> _M:
    for values in itertools.product(*family.precreate) if family.precreate else ():
        metric.labels(*values)
    return metric


def counter(family: Family, registry: CollectorRegistry) -> Counter:
    _expect(family, "counter", scraped=False)
    return _precreated(Counter(family.name, family.help, family.labels, registry=registry),
                       family)


def gauge(family: Family, registry: CollectorRegistry) -> Gauge:
    _expect(family, "gauge", scraped=False)
    return _precreated(Gauge(family.name, family.help, family.labels, registry=registry), family)


def histogram(family: Family, registry: CollectorRegistry) -> Histogram:
    _expect(family, "histogram", scraped=False)
    metric = Histogram(family.name, family.help, family.labels, buckets=family.buckets,
                       registry=registry)
    return _precreated(metric, family)


def info(family: Family, registry: CollectorRegistry) -> Info:
    _expect(family, "info", scraped=False)
    return Info(family.name, family.help, registry=registry)
