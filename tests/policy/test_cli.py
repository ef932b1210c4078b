"""The consent, suppress and campaign commands against a real store (SQLite and PG)."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from phigate.cli.main import main
from phigate.config import Settings
from phigate.queue.models import Message, MessageClass, MessageState
from phigate.queue.store import NewMessage
from phigate.runtime import Runtime

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def config_file(tmp_path: Path, settings: Settings, runtime: Runtime) -> Callable[..., Path]:
    def write(operators: list[str] | None = None, extra: str = "") -> Path:
        ops = [getpass.getuser()] if operators is None else operators
        path = tmp_path / "phigate.toml"
        path.write_text(
            f'[server]\ndomain = "practice.test"\n'
            f'[storage]\nurl = "{settings.storage.url}"\n'
            f'master_key_file = "{settings.storage.master_key_file}"\n'
            f"[admin]\noperators = {json.dumps(ops)}\nviewers = []\n{extra}")
        return path

    return write


@pytest.fixture
def run(config_file: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> Run:
    def invoke(*argv: str, operators: list[str] | None = None, extra: str = ""
               ) -> tuple[int, str, str]:
        path = config_file(operators, extra)
        status = main(["--config", str(path), *argv])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return invoke


def test_consent_grant_list_revoke(run: Run) -> None:
    assert run("consent", "grant", "Pat@Example.org", "--purpose", "marketing",
               "--source", "portal", "--evidence", "form 17, 198.51.100.4")[0] == 0
    assert run("consent", "grant", "pat@example.org", "--purpose",
               "hipaa_marketing_authorization", "--expires", "2030-01-31", "--paid")[0] == 0
    status, out, _ = run("consent", "list", "--json")
    entries = json.loads(out)
    assert status == 0 and len(entries) == 2
    marketing = next(e for e in entries if e["purpose"] == "marketing")
    assert (marketing["address"], marketing["source"], marketing["evidence"],
            marketing["active"]) == ("pat@example.org", "portal", "form 17, 198.51.100.4", True)
    authorization = next(e for e in entries if e["purpose"] != "marketing")
    assert authorization["paid"] is True
    assert authorization["expires_at"].startswith("2030-01-31T23:59:59")
    assert run("consent", "revoke", "pat@example.org", "--purpose", "marketing",
               "--source", "phone")[0] == 0
    assert [e["purpose"] for e in json.loads(run("consent", "list", "--json")[1])] == [
        "hipaa_marketing_authorization"]
    revoked = json.loads(run("consent", "list", "--all", "--json")[1])
    assert {(e["purpose"], e["granted"]) for e in revoked} == {
        ("marketing", False), ("hipaa_marketing_authorization", True)}


def test_consent_import_is_all_or_nothing(run: Run, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("address,purpose,source,evidence\n"
                    "a@example.org,marketing,ehr,row 1\n"
                    "b@example.org,email_phi,ehr,row 2\n")
    status, out, _ = run("consent", "import", str(good))
    assert status == 0 and "imported 2" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("address,purpose\n"
                   "c@example.org,marketing\n"
                   "not-an-address,marketing\n"
                   "d@example.org,marketing\n")
    status, _, err = run("consent", "import", str(bad))
    assert status == 1
    assert "line 3" in err and "not a valid email address" in err
    assert err.count("\n") == 1  # one line
    addresses = {e["address"] for e in json.loads(run("consent", "list", "--json")[1])}
    assert addresses == {"a@example.org", "b@example.org"}  # nothing of bad.csv
    wrong_purpose = tmp_path / "purpose.csv"
    wrong_purpose.write_text("address,purpose\ne@example.org,newsletter\n")
    status, _, err = run("consent", "import", str(wrong_purpose))
    assert status == 1 and "line 2" in err and "unknown purpose" in err


def test_suppress_add_list_remove(run: Run, runtime: Runtime) -> None:
    queued = runtime.store.enqueue(NewMessage(sender="news@practice.test",
                                              recipients=["x@example.org"], body=b"\r\n",
                                              message_class=MessageClass.MARKETING))
    status, out, _ = run("suppress", "add", "x@example.org", "--scope", "marketing",
                         "--reason", "asked at the front desk")
    assert status == 0 and "cancelled" in out
    assert runtime.store.get_message(queued).state == MessageState.DONE
    [entry] = json.loads(run("suppress", "list", "--json")[1])
    assert (entry["address"], entry["scope"], entry["reason"], entry["kind"]) == (
        "x@example.org", "marketing", "asked at the front desk", "manual")
    assert run("suppress", "remove", "x@example.org")[0] == 0
    assert json.loads(run("suppress", "list", "--json")[1]) == []
    [added] = runtime.audit.entries(action="suppression.add")
    assert added["actor"] == getpass.getuser()


def test_campaign_approve_and_pause_tell_the_senders_when_their_class_asks(
        run: Run, runtime: Runtime) -> None:
    waiting = runtime.store.enqueue(NewMessage(
        sender="news@practice.test", recipients=["fan@example.org"],
        body=b"Message-ID: <m1@practice.test>\r\n\r\nhi\r\n", message_class=MessageClass.MARKETING,
        campaign_id="spring", state=MessageState.AWAITING_APPROVAL,
        hold_reason="campaign spring awaiting approval"))
    notices_config = '[policy]\nreview_notice_classes = ["marketing"]\n'

    def reviews() -> list[str]:
        with runtime.store.reading() as session:
            ids = session.scalars(select(Message.id).where(Message.sender == "")
                                  .order_by(Message.created_at, Message.id)).all()
        bodies = [runtime.store.read_body(i).decode() for i in ids]
        assert all("Final-Recipient: rfc822; fan@example.org" in b for b in bodies)
        assert all("<m1@practice.test>" in b and waiting in b for b in bodies)
        return [line for b in bodies for line in b.splitlines()
                if line.startswith("X-Phigate-Review:")]

    assert run("campaign", "approve", "spring", extra=notices_config)[0] == 0
    assert reviews() == ["X-Phigate-Review: released"]
    assert run("campaign", "pause", "spring", "--reason", "complaints",
               extra=notices_config)[0] == 0
    assert reviews() == ["X-Phigate-Review: released", "X-Phigate-Review: held"]
    assert run("campaign", "approve", "spring")[0] == 0  # no class asks: no notice
    assert len(reviews()) == 2


def test_campaign_approve_records_approver_ip_time_and_releases(
    run: Run, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting = runtime.store.enqueue(NewMessage(
        sender="news@practice.test", recipients=["fan@example.org"], body=b"\r\n",
        message_class=MessageClass.MARKETING, campaign_id="spring",
        state=MessageState.AWAITING_APPROVAL,
        hold_reason="campaign spring awaiting approval"))
    [listed] = json.loads(run("campaign", "list", "--json")[1])
    assert (listed["id"], listed["state"], listed["awaiting_approval"]) == ("spring", "pending",
                                                                             1)
    monkeypatch.setenv("SSH_CONNECTION", "203.0.113.9 50022 10.0.0.2 22")
    status, out, _ = run("campaign", "approve", "spring")
    assert status == 0 and "released 1" in out
    assert runtime.store.get_message(waiting).state == MessageState.ACTIVE
    [entry] = runtime.audit.entries(action="campaign.approve")
    assert entry["actor"] == getpass.getuser() and entry["actor_ip"] == "203.0.113.9"
    assert entry["detail"]["approved_at"] and entry["detail"]["released_messages"] == 1
    assert run("campaign", "approve", "autumn", "--ip", "198.51.100.20")[0] == 0
    [latest, _] = runtime.audit.entries(action="campaign.approve")
    assert latest["actor_ip"] == "198.51.100.20"
    views = {v["id"]: v for v in json.loads(run("campaign", "list", "--json")[1])}
    assert views["spring"]["approved_ip"] == "203.0.113.9"
    assert views["autumn"]["state"] == "approved"
    assert run("campaign", "approve", "bad id!")[0] == 1


def test_non_operators_are_refused_and_audited(run: Run, runtime: Runtime) -> None:
    status, _, err = run("campaign", "approve", "spring", operators=[])
    assert status == 1 and "may not" in err
    [denied] = runtime.audit.entries(action="action.denied")
    assert denied["detail"]["action"] == "campaign approve"
    assert run("suppress", "add", "x@example.org", "--scope", "all", "--reason", "r",
               operators=[])[0] == 1
    assert runtime.audit.entries(action="suppression.add") == []
