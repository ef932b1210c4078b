"""One /metrics for serve and its delivery child: the merge of two expositions."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from phigate.observability.merge import merge_expositions, merge_families
from phigate.observability.metrics import Metrics

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def families(text: str) -> list[Metric]:
    return list(text_string_to_metric_families(text))


def samples(merged: list[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in merged for s in family.samples}


PARENT = """\
# HELP phigate_recipients_total Recipient state changes.
# TYPE phigate_recipients_total counter
phigate_recipients_total{class="treatment",outcome="delivered"} 0.0
phigate_recipients_total{class="treatment",outcome="deferred"} 2.0
# HELP phigate_smtp_sessions_active Open SMTP sessions.
# TYPE phigate_smtp_sessions_active gauge
phigate_smtp_sessions_active{listener="submission"} 7.0
# HELP phigate_latency_seconds Latency.
# TYPE phigate_latency_seconds histogram
phigate_latency_seconds_bucket{le="1.0"} 1.0
phigate_latency_seconds_bucket{le="+Inf"} 2.0
phigate_latency_seconds_count 2.0
phigate_latency_seconds_sum 3.5
"""

CHILD = """\
# HELP phigate_recipients_total Recipient state changes.
# TYPE phigate_recipients_total counter
phigate_recipients_total{class="treatment",outcome="delivered"} 5.0
phigate_recipients_total{class="treatment",outcome="deferred"} 1.0
phigate_recipients_total{class="marketing",outcome="delivered"} 4.0
# HELP phigate_smtp_sessions_active Open SMTP sessions.
# TYPE phigate_smtp_sessions_active gauge
phigate_smtp_sessions_active{listener="submission"} 0.0
phigate_smtp_sessions_active{listener="feedback"} 3.0
# HELP phigate_latency_seconds Latency.
# TYPE phigate_latency_seconds histogram
phigate_latency_seconds_bucket{le="1.0"} 4.0
phigate_latency_seconds_bucket{le="+Inf"} 10.0
phigate_latency_seconds_count 10.0
phigate_latency_seconds_sum 60.0
# HELP phigate_child_only_total Only the child counts this.
# TYPE phigate_child_only_total counter
phigate_child_only_total 9.0
"""


def test_counters_with_the_same_labels_are_summed() -> None:
    merged = samples(merge_families(families(PARENT), families(CHILD)))
    delivered = (("class", "treatment"), ("outcome", "delivered"))
    deferred = (("class", "treatment"), ("outcome", "deferred"))
    assert merged[("phigate_recipients_total", delivered)] == 5.0
    assert merged[("phigate_recipients_total", deferred)] == 3.0
    # A label set only the child used is kept as it is.
    marketing = (("class", "marketing"), ("outcome", "delivered"))
    assert merged[("phigate_recipients_total", marketing)] == 4.0


def test_the_parents_gauge_wins_and_the_childs_fills_in() -> None:
    merged = samples(merge_families(families(PARENT), families(CHILD)))
    assert merged[("phigate_smtp_sessions_active", (("listener", "submission"),))] == 7.0
    assert merged[("phigate_smtp_sessions_active", (("listener", "feedback"),))] == 3.0


def test_histogram_buckets_count_and_sum_are_summed() -> None:
    merged = samples(merge_families(families(PARENT), families(CHILD)))
    assert merged[("phigate_latency_seconds_bucket", (("le", "1.0"),))] == 5.0
    assert merged[("phigate_latency_seconds_bucket", (("le", "+Inf"),))] == 12.0
    assert merged[("phigate_latency_seconds_count", ())] == 12.0
    assert merged[("phigate_latency_seconds_sum", ())] == 63.5


def test_a_family_only_the_child_has_is_kept_after_the_parents() -> None:
    merged = merge_families(families(PARENT), families(CHILD))
    assert [f.name for f in merged] == ["phigate_recipients", "phigate_smtp_sessions_active",
                                        "phigate_latency_seconds", "phigate_child_only"]
    assert samples(merged)[("phigate_child_only_total", ())] == 9.0
    # The other way round: a family only the parent has stays too.
    assert [f.name for f in merge_families(families(CHILD), families(PARENT))][-1] == \
        "phigate_child_only"


def test_expositions_of_two_real_registries_merge_into_valid_text() -> None:
    parent, child = CollectorRegistry(), CollectorRegistry()
    for registry, (count, gauge, observed) in ((parent, (1, 10, 0.2)),
                                               (child, (2, 20, 30.0))):
        Counter("phigate_things", "Things.", ["kind"], registry=registry
                ).labels("a").inc(count)
        Gauge("phigate_level", "Level.", registry=registry).set(gauge)
        Histogram("phigate_wait_seconds", "Wait.", buckets=(1, 60), registry=registry
                  ).observe(observed)
    merged = merge_expositions(generate_latest(parent), generate_latest(child)).decode()
    values = samples(families(merged))
    assert values[("phigate_things_total", (("kind", "a"),))] == 3.0
    assert values[("phigate_level", ())] == 10.0
    assert values[("phigate_wait_seconds_bucket", (("le", "1.0"),))] == 1.0
    assert values[("phigate_wait_seconds_bucket", (("le", "60.0"),))] == 2.0
    assert values[("phigate_wait_seconds_count", ())] == 2.0
    # A counter's creation time is a timestamp, not an amount: the parent's is kept.
    parent_created = samples(families(generate_latest(parent).decode()))
    key = ("phigate_things_created", (("kind", "a"),))
    assert values[key] == parent_created[key]


@pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool not installed")
def test_promtool_accepts_the_merged_metrics_of_two_phigate_processes() -> None:
    parent, child = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    parent.record_received("accepted")
    child.record_recipient("delivered", "treatment")
    child.observe_delivery_latency(3.0, "delivered")
    child.record_tls_session("sts", "success")
    parent.register_child(lambda: True, lambda: child.render()[0])
    body, _ = parent.render()
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True,
                            timeout=60, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    values = samples(families(body.decode()))
    delivered = (("class", "treatment"), ("outcome", "delivered"))
    assert values[("phigate_recipients_total", delivered)] == 1.0
    assert values[("phigate_delivery_process_metrics_up", ())] == 1.0


def test_a_child_that_does_not_answer_leaves_the_parents_metrics_and_says_so() -> None:
    parent = Metrics(CollectorRegistry())
    parent.record_received("accepted")
    parent.register_child(lambda: False, lambda: None)
    values = samples(families(parent.render()[0].decode()))
    assert values[("phigate_messages_received_total", (("result", "accepted"),))] == 1.0
    assert values[("phigate_delivery_process_metrics_up", ())] == 0.0
    assert values[("phigate_delivery_process_up", ())] == 0.0
    parent.register_child(None, None)  # no child: neither family
    names = {f.name for f in families(parent.render()[0].decode())}
    assert "phigate_delivery_process_up" not in names
