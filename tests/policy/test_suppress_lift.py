"""``phigate suppress lift --source bounce``: recovery after an incident on our side."""

from __future__ import annotations

import getpass
import json
import ssl
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
from policy.support import PolicyRelay, mail, submit

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


async def test_lift_restores_delivery_and_leaves_an_unsubscribe(
        policy_relay: PolicyRelay, client_tls: ssl.SSLContext, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Bounces during a (past) blocklisting suppressed two patients; lifting restores their
    mail over real SMTP, and the one who unsubscribed stays unsubscribed."""
    stores = policy_relay.stores
    processor = FeedbackProcessor(policy_relay.settings, stores, policy_relay.runtime.engine,
                                  None, dns_lookup=lambda name, timeout=5: None)
    for address in ("pat@example.org", "lee@example.org"):
        processor.apply(classify(_dsn(address, "5.1.1", "550 5.1.1 user unknown"),
                                 verify_dkim=False), campaign_id=None)
    stores.suppressions.add("kim@example.org", "marketing", kind="unsubscribe",
                            reason="unsubscribe (one-click)", source="one-click", actor=SYSTEM)
    policy_relay.grant("kim@example.org")
    before = await submit(policy_relay, client_tls, mail(message_class="treatment"),
                          ["pat@example.org", "lee@example.org"])
    assert {code for code, _ in before.rcpt.values()} == {550}

    settings = policy_relay.settings
    config = tmp_path / "lift.toml"
    config.write_text(
        f'[server]\ndomain = "practice.test"\n[storage]\nurl = "{settings.storage.url}"\n'
        f'master_key_file = "{settings.storage.master_key_file}"\n'
        f'[admin]\noperators = {json.dumps([getpass.getuser()])}\nviewers = []\n')
    assert main(["--config", str(config), "suppress", "lift", "--source", "bounce",
                 "--since", "2000-01-01", "--domain", "example.org", "--yes"]) == 0
    assert "lifted 2" in capsys.readouterr().err

    after = await submit(policy_relay, client_tls, mail(message_class="treatment"),
                         ["pat@example.org", "lee@example.org"])
    assert {code for code, _ in after.rcpt.values()} == {250}
    assert after.data is not None and after.data[0] == 250
    marketing = await submit(policy_relay, client_tls, mail(campaign="spring"),
                             ["kim@example.org"], user="news")
    assert marketing.rcpt["kim@example.org"] == (
        550, "5.7.1 Recipient has unsubscribed from marketing mail")
