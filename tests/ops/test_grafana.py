"""The Grafana dashboard: valid JSON whose queries use only what phigate and its rules export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from phigate.observability.collectors import CampaignSnapshot, StoreSnapshot
from phigate.observability.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def exported_series(tmp_path: Path) -> set[str]:
    metrics = Metrics(CollectorRegistry())
    metrics.register_store_gauges(
        lambda: StoreSnapshot(campaigns=[CampaignSnapshot("c1", delivered=1, complaints=0)])
    )
    metrics.register_certificate("submission", tmp_path / "missing.pem")
    names = set()
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
    for family in metrics.registry.collect():
        names |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
    return names


def test_dashboard_queries_use_existing_metrics_and_rules(tmp_path: Path) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "phigate.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(exprs) >= 20
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))

    rules = yaml.safe_load((DEPLOY / "prometheus" / "phigate-alerts.yml").read_text())
    recorded = {rule["record"] for group in rules["groups"] for rule in group["rules"]
                if "record" in rule}
    used_metrics = {name for expr in exprs for name in re.findall(r"\bphigate_[a-z_]+", expr)}
    used_records = {name for expr in exprs for name in re.findall(r"\bphigate:[a-z_:0-9]+", expr)}
    assert used_metrics - exported_series(tmp_path) == set()
    assert used_records - recorded == set()


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    dashboard = json.loads((DEPLOY / "grafana" / "phigate.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    # promtool parses rule expressions: wrap every query as a recording rule.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(exprs)
    ]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
