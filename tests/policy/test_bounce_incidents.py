"""Bounces by reason over the real feedback listener: a bad address suppresses ``all``, a
full mailbox counts soft, a blocklisting on our side suppresses nobody and opens an
incident for the destination domain."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from phigate.cli.main import main
from phigate.policy.incidents import IncidentStore, hold_for
from phigate.policy.tokens import TokenSigner
from phigate.queue.policy_models import SoftBounceCount
from policy.support import PolicyRelay
from policy.test_feedback_listener import deliver, verp


def dsn(recipient: str, status: str, diagnostic: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.org\r\nTo: bounces@practice.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n\r\n--B--\r\n"
    ).encode()


def incidents(relay: PolicyRelay) -> IncidentStore:
    assert relay.stores.incidents is not None
    return relay.stores.incidents


async def test_dsn_user_unknown_suppresses_all(policy_relay: PolicyRelay,
                                               signer: TokenSigner) -> None:
    address = verp(policy_relay, signer, "gone@example.org")
    code, _ = await deliver(policy_relay, address, dsn(
        "gone@example.org", "5.1.1", "550 5.1.1 <gone@example.org>: Recipient address "
        "rejected: User unknown in local recipient table"))
    assert code == 250
    [entry] = policy_relay.stores.suppressions.entries()
    assert (entry.address, entry.scope, entry.kind) == ("gone@example.org", "all",
                                                        "hard_bounce")
    assert "userunknown" in entry.reason
    assert incidents(policy_relay).entries() == []


async def test_dsn_full_mailbox_counts_soft(policy_relay: PolicyRelay,
                                            signer: TokenSigner) -> None:
    address = verp(policy_relay, signer, "full@example.org")
    code, _ = await deliver(policy_relay, address, dsn(
        "full@example.org", "5.2.2", "552 5.2.2 Mailbox full, quota exceeded"))
    assert code == 250
    assert policy_relay.stores.suppressions.entries() == []
    with policy_relay.runtime.store.writing() as session:
        row = session.get(SoftBounceCount, "full@example.org")
        assert row is not None and row.count == 1


async def test_dsn_blocklisting_suppresses_nobody_and_opens_an_incident(
        policy_relay: PolicyRelay, signer: TokenSigner) -> None:
    text = ("554 5.7.1 Service unavailable; Client host [192.0.2.9] blocked using "
            "zen.spamhaus.org")
    for name in ("pat", "lee", "kim"):
        address = verp(policy_relay, signer, f"{name}@clinic-patients.example")
        code, _ = await deliver(policy_relay, address,
                                dsn(f"{name}@clinic-patients.example", "5.7.1", text))
        assert code == 250
    assert policy_relay.stores.suppressions.entries() == []
    with policy_relay.runtime.store.writing() as session:
        assert session.get(SoftBounceCount, "pat@clinic-patients.example") is None
    [incident] = incidents(policy_relay).entries()
    assert (incident.domain, incident.reason, incident.count) == (
        "clinic-patients.example", "blocked", 3)
    assert incident.hold_until - incident.last_seen == hold_for(3)
    assert incidents(policy_relay).counts() == {"blocked": 1}


def test_backoff_doubles_up_to_a_cap() -> None:
    assert [hold_for(n).total_seconds() / 60 for n in (1, 2, 3)] == [15, 30, 60]
    assert hold_for(40).total_seconds() == 24 * 3600


async def test_incidents_cli_lists_and_clears_with_audit(
        policy_relay: PolicyRelay, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    store = incidents(policy_relay)
    store.record_now("clinic-patients.example", "authfailure",
                     now=datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    config = _config(policy_relay, tmp_path)
    assert main(["--config", str(config), "feedback", "incidents", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["domain"], listed["reason"], listed["count"]) == (
        "clinic-patients.example", "authfailure", 1)
    assert main(["--config", str(config), "feedback", "incidents", "clear",
                 "clinic-patients.example"]) == 0
    assert store.entries() == []
    [cleared] = policy_relay.runtime.audit.entries(action="incident.clear")
    assert cleared["detail"]["domain"] == "clinic-patients.example"
    assert main(["--config", str(config), "feedback", "incidents", "clear",
                 "clinic-patients.example"]) == 1


def _config(relay: PolicyRelay, tmp_path: Path) -> Path:
    settings = relay.settings
    path = tmp_path / "phigate.toml"
    path.write_text(
        f'[server]\ndomain = "practice.test"\n[storage]\nurl = "{settings.storage.url}"\n'
        f'master_key_file = "{settings.storage.master_key_file}"\n'
        f'[admin]\noperators = {json.dumps([getpass.getuser()])}\nviewers = []\n')
    return path
