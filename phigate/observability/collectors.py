"""The families computed at scrape time: the store's gauges and the certificates' expiry.

Gauges that are a property of the store (queue depth, oldest message, quarantine, PHI
waiting for TLS, campaign complaint ratios) are computed from a :class:`StoreSnapshot`
callback at every scrape; certificate expiry is read from the PEM file at scrape time, so
a certbot renewal shows up without a restart of the metrics side.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from phigate.observability import families as F
from phigate.observability.labels import INCIDENT_REASONS, OTHER, LabelGuard, LabelGuards

log = logging.getLogger(__name__)


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


class StoreCollector(Collector):
    """The store gauges, from ``source()`` at every scrape (none while ``source`` is None)."""

    def __init__(self, guards: LabelGuards) -> None:
        self._guards = guards
        self.source: StoreSnapshotSource | None = None

    def describe(self) -> Iterable[Metric]:
        return []  # do not query the store when the collector is registered

    def collect(self) -> Iterable[Metric]:
        source = self.source
        if source is None:
            return []
        up = F.STORE_UP.gauge_family()
        try:
            snapshot = source()
        except Exception as error:  # a scrape must answer even when the database is down
            # The type only: driver messages can quote SQL parameters (addresses).
            log.warning("metrics: store snapshot failed error=%s", type(error).__name__)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *_queue_families(snapshot, self._guards.state),
                *_campaign_families(snapshot.campaigns, self._guards.campaign),
                _domain_gauge(snapshot.domains), _suppression_gauge(snapshot, self._guards),
                _incident_gauge(snapshot.incidents)]


def _queue_families(snap: StoreSnapshot, state: LabelGuard) -> Iterator[Metric]:
    messages = F.QUEUE_MESSAGES.gauge_family()
    for name, count in _merge(snap.messages_by_state, state).items():
        messages.add_metric([name], count)
    yield messages
    recipients = F.QUEUE_RECIPIENTS.gauge_family()
    for name, count in _merge(snap.recipients_by_state, state).items():
        recipients.add_metric([name], count)
    yield recipients
    yield F.QUEUE_OLDEST_MESSAGE_AGE.gauge_family(snap.oldest_pending_age_seconds)
    oldest = F.QUEUE_OLDEST_AGE.gauge_family()
    oldest.add_metric(["waiting"], snap.oldest_pending_age_seconds)
    oldest.add_metric(["quarantined"], snap.oldest_quarantined_age_seconds)
    yield oldest
    yield F.QUARANTINE_MESSAGES.gauge_family(snap.quarantined)
    yield F.QUARANTINE_OLDEST_AGE.gauge_family(snap.oldest_quarantined_age_seconds)
    yield F.PHI_WAITING_FOR_TLS.gauge_family(snap.phi_waiting_for_tls)


def _campaign_families(
    campaigns: Sequence[CampaignSnapshot], campaign_label: LabelGuard
) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    ratio = F.CAMPAIGN_COMPLAINT_RATIO.gauge_family()
    delivered = F.CAMPAIGN_DELIVERED.gauge_family()
    biggest = sorted(campaigns, key=lambda c: c.delivered, reverse=True)
    for campaign in biggest[:_MAX_CAMPAIGNS_PER_SCRAPE]:
        label = campaign_label(campaign.campaign_id)
        if label == OTHER:
            continue  # one campaign's ratio under a shared label would be meaningless
        delivered.add_metric([label], campaign.delivered)
        ratio.add_metric([label], campaign.complaints / max(campaign.delivered, 1))
    return ratio, delivered


def _domain_gauge(domains: Sequence[DomainSnapshot]) -> GaugeMetricFamily:
    gauge = F.DOMAIN_COMPLAINT_RATIO.gauge_family()
    for domain in domains[:_MAX_CAMPAIGNS_PER_SCRAPE]:
        gauge.add_metric([domain.domain], domain.complaints / max(domain.delivered, 1))
    return gauge


def _suppression_gauge(snap: StoreSnapshot, guards: LabelGuards) -> GaugeMetricFamily:
    gauge = F.SUPPRESSIONS.gauge_family()
    merged: dict[tuple[str, str], int] = {}
    for (scope, reason), count in snap.suppressions.items():
        key = (guards.suppression_scope(scope), guards.suppression_reason(reason))
        merged[key] = merged.get(key, 0) + count
    for (scope, reason), count in sorted(merged.items()):
        gauge.add_metric([scope, reason], count)
    return gauge


def _incident_gauge(incidents: Mapping[str, int]) -> GaugeMetricFamily:
    gauge = F.BOUNCE_INCIDENTS.gauge_family()
    merged = {reason: 0 for reason in sorted(INCIDENT_REASONS)}
    for reason, count in incidents.items():
        key = reason if reason in INCIDENT_REASONS else OTHER
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


class CertificateCollector(Collector):
    """Expiry and load success of each registered certificate file, read at every scrape."""

    def __init__(self) -> None:
        self.paths: dict[str, Path] = {}

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        expiry = F.CERTIFICATE_EXPIRY.gauge_family()
        loaded = F.CERTIFICATE_LOADED.gauge_family()
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


class ChildProcessCollector(Collector):
    """Whether the delivery child runs and answered this scrape (none without a child)."""

    def __init__(self) -> None:
        #: True while the child process runs; None: no child (one process, or delivery only).
        self.source: Callable[[], bool] | None = None
        #: Set by the scrape that asked the child, just before this collector runs.
        self.metrics_up = False

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        source = self.source
        if source is None:
            return []
        return [F.DELIVERY_PROCESS_UP.gauge_family(1 if source() else 0),
                F.DELIVERY_PROCESS_METRICS_UP.gauge_family(1 if self.metrics_up else 0)]
