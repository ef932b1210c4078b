"""``phigate suppress lift --source bounce``: recovery after an incident on our side."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from phigate.audit.log import SYSTEM
from phigate.cli.main import main
from phigate.config import Settings
from phigate.mta.delivery.dsn import FailedRecipient, build_dsn
from phigate.policy.feedback.actions import FeedbackProcessor
from phigate.policy.feedback.classify import classify
from phigate.policy.stores import PolicyStores
from phigate.runtime import Runtime

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _dsn(address: str, status: str, text: str) -> bytes:
    raw = build_dsn(
        original=f"From: dr@clinic.example\r\nTo: {address}\r\n\r\nbody\r\n".encode(),
        envelope_sender="dr@clinic.example", reporting_mta="mx.practice.test",
        failed=[FailedRecipient(address, status, "mx.example", f"smtp; {text}")],
        arrival=START)
    assert raw is not None
    return raw


@pytest.fixture
def config(tmp_path: Path, settings: Settings, runtime: Runtime) -> Path:
    path = tmp_path / "phigate.toml"
    path.write_text(
        f'[server]\ndomain = "practice.test"\n[storage]\nurl = "{settings.storage.url}"\n'
        f'master_key_file = "{settings.storage.master_key_file}"\n'
        f'[admin]\noperators = {json.dumps([getpass.getuser()])}\nviewers = []\n')
    return path


def test_lift_lists_first_then_lifts_only_bounce_suppressions(
        config: Path, settings: Settings, runtime: Runtime,
        capsys: pytest.CaptureFixture[str]) -> None:
    stores = PolicyStores.from_runtime(runtime)
    processor = FeedbackProcessor(settings, stores, runtime.engine, None,
                                  dns_lookup=lambda name, timeout=5: None)
    for address in ("pat@blocked.example", "lee@blocked.example"):
        report = classify(_dsn(address, "5.1.1", "550 5.1.1 user unknown"), verify_dkim=False)
        assert report.recipients[0].permanent
        processor.apply(report, campaign_id=None, now=START + timedelta(minutes=5))
    stores.suppressions.add("kim@blocked.example", "marketing", kind="unsubscribe",
                            reason="unsubscribe (one-click)", source="one-click",
                            actor=SYSTEM,
                            now=START + timedelta(minutes=6))
    assert set(stores.suppressions.scopes_for(["pat@blocked.example"])["pat@blocked.example"]) \
        == {"all"}

    since = ["--since", (START - timedelta(hours=1)).isoformat()]
    assert main(["--config", str(config), "suppress", "lift", "--source", "bounce", *since,
                 "--domain", "blocked.example", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(e["address"] for e in listed) == ["lee@blocked.example", "pat@blocked.example"]
    assert stores.suppressions.scopes_for(["pat@blocked.example"])  # listing lifts nothing

    assert main(["--config", str(config), "suppress", "lift", "--source", "bounce", *since,
                 "--category", "userunknown", "--yes"]) == 0
    assert "lifted 2" in capsys.readouterr().err
    remaining = stores.suppressions.scopes_for(
        ["pat@blocked.example", "lee@blocked.example", "kim@blocked.example"])
    assert remaining == {"kim@blocked.example": {"marketing"}}  # the unsubscribe stays
    lifts = runtime.audit.entries(action="suppression.lift")
    assert sorted(e["detail"]["address"] for e in lifts) == [
        "lee@blocked.example", "pat@blocked.example"]


def test_lift_outside_the_window_or_category_matches_nothing(
        config: Path, settings: Settings, runtime: Runtime,
        capsys: pytest.CaptureFixture[str]) -> None:
    stores = PolicyStores.from_runtime(runtime)
    processor = FeedbackProcessor(settings, stores, runtime.engine, None,
                                  dns_lookup=lambda name, timeout=5: None)
    report = classify(_dsn("pat@example.net", "5.1.1", "550 5.1.1 user unknown"),
                      verify_dkim=False)
    processor.apply(report, campaign_id=None, now=START)
    assert main(["--config", str(config), "suppress", "lift", "--source", "bounce",
                 "--since", (START + timedelta(days=1)).isoformat(), "--yes"]) == 0
    assert main(["--config", str(config), "suppress", "lift", "--source", "bounce",
                 "--since", START.isoformat(), "--category", "blocked", "--yes"]) == 0
    assert "lifted 0" in capsys.readouterr().err
    assert stores.suppressions.scopes_for(["pat@example.net"]) == {"pat@example.net": {"all"}}
