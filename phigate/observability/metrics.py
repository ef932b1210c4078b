"""Every Prometheus metric phigate exports, and the typed helpers call sites use.

All metrics live in a dedicated :class:`CollectorRegistry` (not prometheus-client's global
one, so a library that registers its own metrics cannot leak into our ``/metrics`` and
tests can build a fresh :class:`Metrics`), prefixed ``phigate_``. The layout:

- :mod:`~phigate.observability.families`: every family as data (name, help, type, labels);
- :mod:`~phigate.observability.labels`: the label value types and the guard that keeps
  every label bounded and free of PHI;
- :mod:`~phigate.observability.collectors`: the families computed at scrape time (store
  gauges, certificate expiry);
- :mod:`~phigate.observability.health`: ``/healthz`` and the HTTP routes.

Call sites use the typed helpers of :data:`METRICS`, e.g.::

    METRICS.record_received("accepted")
    METRICS.record_delivery_attempt("success", tls="verified")
    with METRICS.smtp_session("submission"): ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
)

from phigate import __version__
from phigate.observability import families as F
from phigate.observability.collectors import (
    CertificateCollector,
    ChildProcessCollector,
    StoreCollector,
    StoreSnapshotSource,
)
from phigate.observability.labels import (
    FEEDBACK_KINDS,
    OTHER,
    AttemptOutcomeLabel,
    AuthFailureReasonLabel,
    CertificateLabel,
    DirectionLabel,
    DkimAlgorithmLabel,
    FinalOutcomeLabel,
    LabelGuards,
    ListenerLabel,
    LockoutKindLabel,
    ReceivedResultLabel,
    RecipientOutcomeLabel,
    TlsLevelLabel,
    UnprocessableReasonLabel,
    UnsubscribeMethodLabel,
)


class Metrics:
    """The metric objects, bound to one registry, and the helpers call sites use."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry if registry is not None else CollectorRegistry()
        self.labels = LabelGuards()
        self.received = F.counter(F.RECEIVED, r)
        self.recipients = F.counter(F.RECIPIENTS, r)
        self.delivery_attempts = F.counter(F.DELIVERY_ATTEMPTS, r)
        self.delivery_latency = F.histogram(F.DELIVERY_LATENCY, r)
        self.scan_duration = F.histogram(F.SCAN_DURATION, r)
        self.scan_verdicts = F.counter(F.SCAN_VERDICTS, r)
        self.scan_categories = F.counter(F.SCAN_CATEGORIES, r)
        self.policy_decisions = F.counter(F.POLICY_DECISIONS, r)
        self.auth_failures = F.counter(F.AUTH_FAILURES, r)
        self.auth_lockouts = F.counter(F.AUTH_LOCKOUTS, r)
        self.tls_handshake_failures = F.counter(F.TLS_HANDSHAKE_FAILURES, r)
        self.bounces = F.counter(F.BOUNCES, r)
        self.feedback_ignored = F.counter(F.FEEDBACK_IGNORED, r)
        self.complaints = F.counter(F.COMPLAINTS, r)
        self.unsubscribes = F.counter(F.UNSUBSCRIBES, r)
        self.suppressions_added = F.counter(F.SUPPRESSIONS_ADDED, r)
        self.smtp_sessions = F.gauge(F.SMTP_SESSIONS, r)
        self.dkim_failures = F.counter(F.DKIM_FAILURES, r)
        self.unprocessable = F.counter(F.UNPROCESSABLE, r)
        self.tls_sessions = F.counter(F.TLS_SESSIONS, r)
        self.listener_up = F.gauge(F.LISTENER_UP, r)
        self.build = F.info(F.BUILD, r)
        self.build.info({"version": __version__})
        self.delivery_process_restarts = F.counter(F.DELIVERY_PROCESS_RESTARTS, r)
        ProcessCollector(namespace="phigate", registry=r)
        self._store = StoreCollector(self.labels)
        self._certificates = CertificateCollector()
        self._child = ChildProcessCollector()
        self._child_metrics: Callable[[], bytes | None] | None = None
        r.register(self._store)
        r.register(self._certificates)
        r.register(self._child)

    # --- helpers for call sites -----------------------------------------------------------

    def record_received(self, result: ReceivedResultLabel) -> None:
        self.received.labels(result=self.labels.received_result(result)).inc()

    def record_recipient(self, outcome: RecipientOutcomeLabel, message_class: str) -> None:
        """A recipient was delivered, deferred, bounced, expired or cancelled."""
        self.recipients.labels(self.labels.recipient_outcome(outcome),
                               self.labels.message_class(message_class)).inc()

    def record_delivery_attempt(self, outcome: AttemptOutcomeLabel, *, tls: TlsLevelLabel) -> None:
        self.delivery_attempts.labels(
            outcome=self.labels.attempt_outcome(outcome), tls=self.labels.tls_level(tls)
        ).inc()

    def record_tls_session(self, policy: str, result: str) -> None:
        """One outbound TLS session: its policy and ``success`` or an RFC 8460 result."""
        self.tls_sessions.labels(policy=self.labels.tls_policy(policy),
                                 result=self.labels.tls_result(result)).inc()

    def observe_delivery_latency(self, seconds: float, outcome: FinalOutcomeLabel) -> None:
        """Acceptance to final state, for one recipient."""
        outcome_label = self.labels.final_outcome(outcome)
        self.delivery_latency.labels(outcome=outcome_label).observe(max(seconds, 0))

    def observe_scan(self, seconds: float, verdict: str, categories: Iterable[str] = ()) -> None:
        """One scanned message: its duration, verdict and (distinct) finding categories."""
        self.scan_duration.observe(seconds)
        self.scan_verdicts.labels(verdict=self.labels.scan_verdict(verdict)).inc()
        for category in {self.labels.scan_category(c) for c in categories}:
            self.scan_categories.labels(category=category).inc()

    def record_policy_decision(self, rule: str, action: str) -> None:
        self.policy_decisions.labels(
            rule=self.labels.policy_rule(rule), action=self.labels.policy_action(action)
        ).inc()

    def record_auth_failure(self, reason: AuthFailureReasonLabel = "bad_credentials") -> None:
        self.auth_failures.labels(reason=self.labels.auth_reason(reason)).inc()

    def record_auth_lockout(self, kind: LockoutKindLabel) -> None:
        self.auth_lockouts.labels(kind=self.labels.lockout_kind(kind)).inc()

    def record_tls_handshake_failure(self, direction: DirectionLabel) -> None:
        self.tls_handshake_failures.labels(direction=self.labels.direction(direction)).inc()

    def record_bounce(self, *, permanent: bool) -> None:
        self.bounces.labels(kind="permanent" if permanent else "temporary").inc()

    def record_complaint(self) -> None:
        self.complaints.inc()

    def record_feedback_ignored(self, kind: str, trust: str) -> None:
        """A feedback report that changed nothing: not tied to our mail, or seen before."""
        self.feedback_ignored.labels(kind=kind if kind in FEEDBACK_KINDS else OTHER,
                                     reason=trust).inc()

    def record_unsubscribe(self, method: UnsubscribeMethodLabel) -> None:
        self.unsubscribes.labels(method=self.labels.unsubscribe_method(method)).inc()

    def record_suppression_added(self, scope: str, reason: str) -> None:
        """``reason`` is mapped to a fixed set: the CLI's free-text reason is not a label."""
        self.suppressions_added.labels(
            scope=self.labels.suppression_scope(scope),
            reason=self.labels.suppression_reason(reason),
        ).inc()

    def record_unprocessable(self, reason: UnprocessableReasonLabel) -> None:
        """A message delivery bounced as poison or parked corrupt (see delivery.poison)."""
        self.unprocessable.labels(reason=self.labels.unprocessable_reason(reason)).inc()

    def record_dkim_failure(self, algorithm: DkimAlgorithmLabel = "rsa") -> None:
        self.dkim_failures.labels(algorithm=self.labels.dkim_algorithm(algorithm)).inc()

    @contextmanager
    def smtp_session(self, listener: ListenerLabel = "submission") -> Iterator[None]:
        """Counts an open SMTP session for as long as the ``with`` block runs."""
        gauge = self.smtp_sessions.labels(listener=self.labels.listener(listener))
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def set_listener_up(self, listener: ListenerLabel, up: bool) -> None:
        self.listener_up.labels(listener=self.labels.listener(listener)).set(1 if up else 0)

    def register_store_gauges(self, source: StoreSnapshotSource | None) -> None:
        """Compute the store gauges from ``source()`` at every scrape (None: stop).

        ``source`` runs synchronously in the scraping thread (:func:`render_latest` is run
        off the event loop by the HTTP handler); if it raises, ``phigate_store_up`` is 0.
        """
        self._store.source = source

    def register_certificate(self, name: CertificateLabel, path: Path) -> None:
        """Export ``phigate_tls_certificate_expiry_seconds{certificate=name}`` for ``path``."""
        self._certificates.paths[self.labels.certificate(name)] = path

    def record_delivery_process_restart(self) -> None:
        self.delivery_process_restarts.inc()

    def register_child(self, running: Callable[[], bool] | None,
                       fetch: Callable[[], bytes | None] | None) -> None:
        """Merge a delivery child's metrics into every scrape (None, None: stop).

        ``running()`` says whether the child process runs; ``fetch()`` returns its
        exposition, or None when it did not answer in time (then this process's metrics
        are served alone, with ``phigate_delivery_process_metrics_up`` 0).
        """
        self._child.source = running
        self._child_metrics = fetch

    def render(self) -> tuple[bytes, str]:
        fetch = self._child_metrics
        if fetch is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from phigate.observability.merge import merge_expositions

        child = fetch()
        self._child.metrics_up = bool(child)
        own = generate_latest(self.registry)
        if not child:
            return own, CONTENT_TYPE_LATEST
        return merge_expositions(own, child), CONTENT_TYPE_LATEST


#: The process-wide metrics (prometheus-client metrics are process-global by nature).
METRICS = Metrics()


def render_latest(metrics: Metrics = METRICS) -> tuple[bytes, str]:
    """The exposition text and its Content-Type, for the ``/metrics`` handler."""
    return metrics.render()
