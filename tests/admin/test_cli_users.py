"""``phigate user add|set|list`` with Reply-To, and ``user lockouts|unlock`` (audited),
in-process through main() with the output captured."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from phigate.accounts.store import Account
from phigate.cli.main import main
from phigate.mta.submission.auth import lockout_tracker
from phigate.mta.submission.data_checks import check_data
from phigate.queue.models import AuditEvent
from phigate.runtime import Runtime


@pytest.fixture
def config(runtime: Runtime, tmp_path: Path) -> Path:
    settings = runtime.settings
    path = tmp_path / "phigate.toml"
    path.write_text(
        "[server]\ndomain = \"practice.test\"\nhostname = \"relay.practice.test\"\n"
        f"[storage]\nurl = \"{settings.storage.url}\"\n"
        f"master_key_file = \"{settings.storage.master_key_file}\"\n")
    return path


def cli(config: Path, *args: str, stdin: str = "") -> int:
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        return main(["--config", str(config), *args])
    finally:
        sys.stdin = old


def actions(runtime: Runtime) -> list[tuple[str, dict[str, object]]]:
    with runtime.store.writing() as session:
        return [(e.action, json.loads(e.detail) if isinstance(e.detail, str) else e.detail)
                for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_reply_to_is_set_listed_and_used_by_the_header_check(
        config: Path, runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(config, "user", "add", "ehr", "--senders", "practice.test",
               "--reply-to", "frontdesk@clinic-mail.test", stdin="pw\n") == 0
    account = runtime.accounts.get("ehr")
    assert account is not None and account.reply_to == ("frontdesk@clinic-mail.test",)
    message = (b"From: reminders@practice.test\r\nTo: p@example.org\r\n"
               b"Reply-To: frontdesk@clinic-mail.test\r\nSubject: x\r\n\r\nbody\r\n")
    assert not hasattr(check_data(message, account), "reason")
    assert cli(config, "user", "set", "ehr", "--reply-to", "") == 0
    cleared = runtime.accounts.get("ehr")
    assert cleared is not None and cleared.reply_to == ()
    assert hasattr(check_data(message, cleared), "reason")  # refused now
    assert cli(config, "user", "set", "ehr", "--reply-to", "clinic-mail.test") == 0
    capsys.readouterr()
    assert cli(config, "user", "list") == 0
    listing = capsys.readouterr().out
    assert "REPLY-TO" in listing and "clinic-mail.test" in listing
    assert cli(config, "user", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["reply_to"] == ["clinic-mail.test"]
    assert [a for a, _ in actions(runtime)] == ["user.add", "user.set", "user.set"]
    assert cli(config, "user", "set", "ehr", "--reply-to", "not an address") == 1


def test_lockouts_are_listed_and_unlock_is_audited(
        config: Path, runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    runtime.accounts.add("ehr", "pw", senders=["practice.test"], classes=["treatment"])
    serving = lockout_tracker(runtime.settings, runtime.engine)  # what serve keeps
    for _ in range(5):
        serving.failure("203.0.113.9", "ehr")
    assert cli(config, "user", "lockouts") == 0
    out = capsys.readouterr().out
    assert "ehr" in out and "203.0.113.9" in out and "locked out" in out
    assert cli(config, "user", "unlock", "ehr") == 0
    assert "1 lockout(s) cleared" in capsys.readouterr().out
    assert serving.admit("203.0.113.9", "ehr").locked_for == 0
    assert actions(runtime)[-1] == ("user.unlock", {"user": "ehr", "client_ip": "*",
                                                    "lockouts_cleared": 1})
    assert cli(config, "user", "lockouts") == 0
    assert capsys.readouterr().out.strip() == "phigate: no lockouts"


def test_an_account_without_reply_to_is_unchanged(runtime: Runtime) -> None:
    account = runtime.accounts.add("app", "pw", senders=["practice.test"], classes=[])
    assert isinstance(account, Account) and account.reply_to == ()
