"""The shipped Prometheus rules: valid, tested by promtool, each alert fires and stays quiet."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from phigate.observability.collectors import CampaignSnapshot, StoreSnapshot
from phigate.observability.families import FAMILIES
from phigate.observability.metrics import Metrics
from phigate.queue.models import MessageState, RecipientState

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = DEPLOY / "phigate-alerts.yml"
RULE_TESTS = DEPLOY / "phigate-alerts.test.yml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

needs_promtool = pytest.mark.skipif(
    not Path(PROMTOOL).exists(), reason="promtool not installed (Debian package prometheus)"
)


def promtool(*args: str | Path, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


@needs_promtool
def test_rules_are_valid() -> None:
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_example_prometheus_config_is_valid() -> None:
    result = promtool("check", "config", DEPLOY / "prometheus.example.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_rule_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    # The unit tests are only worth something if a broken rule makes them fail.
    threshold = "phigate:recipients_delivered:increase1d > "
    broken = RULES.read_text().replace(threshold + "0.003", threshold + "0.03")
    assert broken != RULES.read_text()
    (tmp_path / RULES.name).write_text(broken)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    result = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "PhigateComplaintRateHigh" in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    rules = yaml.safe_load(RULES.read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]
              if "alert" in rule}
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert len(alerts) >= 10
    assert alerts - firing == set(), "alerts without a firing case"
    assert alerts - quiet == set(), "alerts without a quiet case"


def test_rules_use_only_metrics_phigate_exports(tmp_path: Path) -> None:
    """A renamed metric must not silently turn an alert into one that can never fire."""
    metrics = Metrics(CollectorRegistry())
    # Scrape-time gauges appear once their sources are registered.
    metrics.register_store_gauges(
        lambda: StoreSnapshot(campaigns=[CampaignSnapshot("c1", delivered=1, complaints=0)])
    )
    metrics.register_certificate("submission", tmp_path / "missing.pem")
    exported = set()
    for family in metrics.registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
        exported |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
    used = set(re.findall(r"\bphigate_[a-z_]+", RULES.read_text()))
    assert used and used - exported == set()


def test_alerts_follow_the_recording_rules_they_use_in_one_group() -> None:
    # Groups are evaluated concurrently: an alert reading a recording rule of another group
    # (or a later one) sees a value one evaluation old, which made the promtool tests flaky.
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        recorded: set[str] = set()
        for rule in group["rules"]:
            used = set(re.findall(r"\bphigate:[a-z0-9_:]+", rule["expr"]))
            assert used <= recorded, (rule.get("alert") or rule.get("record"), used - recorded)
            if "record" in rule:
                recorded.add(rule["record"])


def test_rule_selectors_name_label_values_phigate_exports(tmp_path: Path) -> None:
    """A renamed label value must not silently turn an alert into one that can never fire
    either (``kind="client_ip"`` of the lockouts became ``user_ip``): every value a rule
    selects, exactly or in a list of alternatives, of a label with a fixed set of values,
    is one of them (the event families' pre-created series, the scraped queue gauges of a
    queue with mail in every state)."""
    metrics = Metrics(CollectorRegistry())
    metrics.register_store_gauges(lambda: StoreSnapshot(
        messages_by_state={state.value: 1 for state in MessageState},
        recipients_by_state={state.value: 1 for state in RecipientState},
        campaigns=[CampaignSnapshot("c1", delivered=1, complaints=0)]))
    known: dict[tuple[str, str], set[str]] = {}  # (sample name, label) -> values
    for family in metrics.registry.collect():
        for sample in family.samples:
            for label, value in sample.labels.items():
                known.setdefault((sample.name, label), set()).add(value)
    fixed = {family.name: dict(zip(family.labels, family.precreate, strict=False))
             for family in FAMILIES}
    checked = 0
    for name, selector in re.findall(r"\b(phigate_[a-z_]+)\{([^}]*)\}", RULES.read_text()):
        for label, operator, values in re.findall(r'(\w+)\s*(=~|=)\s*"([^"]*)"', selector):
            allowed = set(fixed.get(name.removesuffix("_total"), {}).get(label, ()))
            if not allowed and name in {f.name for f in FAMILIES if f.scraped}:
                allowed = known.get((name, label), set())
            if not allowed:
                continue  # a free label (a reason text, a domain): nothing fixed to check
            for value in values.split("|") if operator == "=~" else [values]:
                assert value in allowed, (name, label, value, sorted(allowed))
                checked += 1
    assert checked >= 10
