"""What /metrics exports: every family's name, type and label names, and where they come from.

The dashboards (deploy/grafana), the alert rules (deploy/prometheus) and every operator's
own queries depend on these names; a refactor that renames one breaks them silently. The
list below is what phigate exported before the families became data (issue 12): change it
only together with deploy/ and the README's metric reference.
"""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from helpers.transport import self_signed
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from phigate.observability import families, labels
from phigate.observability.collectors import CampaignSnapshot, DomainSnapshot, StoreSnapshot
from phigate.observability.metrics import Metrics

EXPORTED: list[tuple[str, str, tuple[str, ...]]] = [
    ("phigate_messages_received", "counter", ('result',)),
    ("phigate_recipients", "counter", ('class', 'outcome')),
    ("phigate_delivery_attempts", "counter", ('outcome', 'tls')),
    ("phigate_delivery_latency_seconds", "histogram", ('outcome',)),
    ("phigate_scan_duration_seconds", "histogram", ()),
    ("phigate_scan_verdicts", "counter", ('verdict',)),
    ("phigate_scan_categories", "counter", ('category',)),
    ("phigate_policy_decisions", "counter", ('action', 'rule')),
    ("phigate_auth_failures", "counter", ('reason',)),
    ("phigate_auth_lockouts", "counter", ('kind',)),
    ("phigate_tls_handshake_failures", "counter", ('direction',)),
    ("phigate_bounces", "counter", ('kind',)),
    ("phigate_feedback_ignored", "counter", ('kind', 'reason')),
    ("phigate_complaints", "counter", ()),
    ("phigate_unsubscribes", "counter", ('method',)),
    ("phigate_suppressions_added", "counter", ('reason', 'scope')),
    ("phigate_smtp_sessions_active", "gauge", ('listener',)),
    ("phigate_dkim_signing_failures", "counter", ('algorithm',)),
    ("phigate_messages_unprocessable", "counter", ('reason',)),
    ("phigate_tls_sessions", "counter", ('policy', 'result')),
    ("phigate_listener_up", "gauge", ('listener',)),
    ("phigate_build_info", "gauge", ('version',)),
    ("phigate_delivery_process_restarts", "counter", ()),
    ("phigate_store_up", "gauge", ()),
    ("phigate_queue_messages", "gauge", ('state',)),
    ("phigate_queue_recipients", "gauge", ('state',)),
    ("phigate_queue_oldest_message_age_seconds", "gauge", ()),
    ("phigate_queue_oldest_age_seconds", "gauge", ('state',)),
    ("phigate_quarantine_messages", "gauge", ()),
    ("phigate_quarantine_oldest_age_seconds", "gauge", ()),
    ("phigate_phi_waiting_for_tls_recipients", "gauge", ()),
    ("phigate_campaign_complaint_ratio", "gauge", ('campaign',)),
    ("phigate_campaign_delivered_recipients", "gauge", ('campaign',)),
    ("phigate_domain_complaint_ratio", "gauge", ('domain',)),
    ("phigate_suppressions", "gauge", ('reason', 'scope')),
    ("phigate_bounce_incidents", "gauge", ('reason',)),
    ("phigate_tls_certificate_expiry_seconds", "gauge", ('certificate',)),
    ("phigate_tls_certificate_load_success", "gauge", ('certificate',)),
    ("phigate_delivery_process_up", "gauge", ()),
    ("phigate_delivery_process_metrics_up", "gauge", ()),
]


def exercised(tmp_path: Path) -> Metrics:
    """A fresh Metrics with every helper used once, so every family has a sample."""
    m = Metrics(CollectorRegistry())
    m.record_received("accepted")
    m.record_recipient("delivered", "treatment")
    m.record_delivery_attempt("success", tls="verified")
    m.record_tls_session("dane", "success")
    m.observe_delivery_latency(42.0, "delivered")
    m.observe_scan(0.03, "phi", ["PERSON"])
    m.record_policy_decision("phi_in_marketing", "quarantine")
    m.record_auth_failure()
    m.record_auth_lockout("user")
    m.record_tls_handshake_failure("outbound")
    m.record_bounce(permanent=False)
    m.record_complaint()
    m.record_feedback_ignored("bounce", "unverified")
    m.record_unsubscribe("mailto")
    m.record_suppression_added("all", "manual")
    m.record_dkim_failure("rsa")
    with m.smtp_session("feedback"):
        pass
    m.set_listener_up("http", True)
    m.register_store_gauges(lambda: StoreSnapshot(
        messages_by_state={"active": 3}, recipients_by_state={"deferred": 2},
        oldest_pending_age_seconds=5, quarantined=1, oldest_quarantined_age_seconds=7,
        phi_waiting_for_tls=2, campaigns=[CampaignSnapshot("c1", 100, 1)],
        domains=[DomainSnapshot("gmail.com", 2000, 2)],
        suppressions={("marketing", "unsubscribe"): 4}, incidents={"blocked": 1}))
    self_signed("mail.example.org", str(tmp_path))
    m.register_certificate("submission", tmp_path / "mail.example.org.crt")
    m.record_delivery_process_restart()
    m.register_child(lambda: True, lambda: None)  # a delivery child that does not answer
    return m


def rendered(m: Metrics) -> dict[str, tuple[str, tuple[str, ...], str]]:
    """name -> (type, label names, help) of each phigate family in the exposition text."""
    found = {}
    for family in text_string_to_metric_families(m.render()[0].decode()):
        if family.name.endswith("_created") or family.name.startswith("phigate_process_"):
            continue
        names = sorted({label for s in family.samples for label in s.labels} - {"le"})
        found[family.name] = (family.type, tuple(names), family.documentation)
    return found


def test_metrics_exports_exactly_the_known_families(tmp_path: Path) -> None:
    found = rendered(exercised(tmp_path))
    assert [(name, kind, names) for name, (kind, names, _) in found.items()] == EXPORTED


@pytest.mark.parametrize("family", families.FAMILIES, ids=lambda f: f.name)
def test_every_declared_family_is_exported_with_its_help(family: families.Family,
                                                         tmp_path: Path) -> None:
    found = rendered(exercised(tmp_path))
    name = f"{family.name}_info" if family.kind == "info" else family.name
    kind, label_names, help_text = found[name]
    assert help_text == family.help
    if family.kind != "info":
        assert kind == family.kind
        assert label_names == tuple(sorted(family.labels))


def test_label_types_are_named_as_labels() -> None:
    # MessageClass, RecipientOutcome, TlsLevel... are domain enums; a label type sharing
    # the name was imported in their place more than once.
    literals = [name for name, value in vars(labels).items()
                if typing.get_origin(value) is typing.Literal]
    assert literals and all(name.endswith("Label") for name in literals), literals
