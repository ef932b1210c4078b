"""``phigate queue|audit|purge`` as an admin meets them (in-process, the real OS user)."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from phigate.audit.log import SYSTEM
from phigate.cli.main import main
from phigate.queue.models import MessageState
from phigate.runtime import Runtime

Enqueue = Callable[..., str]
ME = getpass.getuser()


@pytest.fixture
def config(runtime: Runtime, tmp_path: Path) -> Path:
    settings = runtime.settings
    path = tmp_path / "phigate.toml"
    path.write_text(
        "[server]\ndomain = \"practice.test\"\nhostname = \"relay.practice.test\"\n"
        f"[storage]\nurl = \"{settings.storage.url}\"\n"
        f"master_key_file = \"{settings.storage.master_key_file}\"\n"
        f"[admin]\noperators = [\"{ME}\"]\n"
    )
    return path


def cli(config: Path, *args: str) -> int:
    return main(["--config", str(config), *args])


def test_queue_list_json_is_one_array_with_filters(
        config: Path, enqueue: Enqueue, capsys: pytest.CaptureFixture[str]) -> None:
    old = enqueue("a@one.example", "b@two.example", age=timedelta(hours=2))
    enqueue("c@one.example")
    assert cli(config, "queue", "list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["recipient"] for r in rows] == ["a@one.example", "b@two.example", "c@one.example"]
    assert cli(config, "queue", "list", "--json", "--domain", "one.example",
               "--older-than", "1h") == 0
    assert [r["message_id"] for r in json.loads(capsys.readouterr().out)] == [old]
    assert cli(config, "queue", "list", "--json", "--state", "held") == 0
    assert json.loads(capsys.readouterr().out) == []
    assert cli(config, "queue", "list") == 0
    table = capsys.readouterr().out
    assert old in table and "-- 3 recipient(s)" in table


def test_queue_show_has_envelope_verdict_and_no_body(
        config: Path, enqueue: Enqueue, capsys: pytest.CaptureFixture[str]) -> None:
    message_id = enqueue("pat@example.org", phi_verdict="phi", phi_categories=["MRN"],
                         rule_hits=[{"rule": "phi-scan", "action": "tag", "reason": "PHI: MRN"}])
    assert cli(config, "queue", "show", message_id, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["id"], shown["phi_verdict"], shown["attempts"]) == (message_id, "phi", [])
    assert shown["rule_hits"][0]["rule"] == "phi-scan"
    assert cli(config, "queue", "show", message_id) == 0
    out = capsys.readouterr().out
    assert "PHI verdict  phi" in out and "48213977" not in out


def test_queue_actions_are_audited_and_report_each_id(
        config: Path, enqueue: Enqueue, runtime: Runtime,
        capsys: pytest.CaptureFixture[str]) -> None:
    first, second = enqueue("a@x.example"), enqueue("b@x.example")
    assert cli(config, "queue", "hold", first, second, "--reason", "investigating") == 0
    assert {runtime.store.get_message(i).state for i in (first, second)} == {MessageState.HELD}
    assert cli(config, "queue", "release", first) == 0
    assert cli(config, "queue", "retry", first, "NOPE") == 1
    captured = capsys.readouterr()
    assert "phigate: error: no message NOPE" in captured.err
    assert cli(config, "queue", "delete", second) == 0
    actions = [e["action"] for e in runtime.audit.entries(actor=ME)]
    assert actions == ["queue.delete", "queue.retry", "queue.release", "queue.hold",
                       "queue.hold"]


def test_a_viewer_is_refused_with_one_line_and_exit_1(
        config: Path, enqueue: Enqueue, runtime: Runtime, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    message_id = enqueue("a@x.example")
    monkeypatch.setenv("PHIGATE_ADMIN__OPERATORS", "[]")
    monkeypatch.setenv("PHIGATE_ADMIN__VIEWERS", f'["{ME}"]')
    assert cli(config, "queue", "list", "--json") == 0
    capsys.readouterr()
    assert cli(config, "queue", "hold", message_id) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"phigate: error: user {ME} may not run queue.hold: not in [admin] operators "
                   "(attempt recorded)")
    [entry] = runtime.audit.entries(action="action.denied")
    assert entry["message_id"] == message_id
    assert runtime.store.get_message(message_id).state == MessageState.ACTIVE


def test_queue_shape_table_and_json(config: Path, enqueue: Enqueue,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    enqueue("a@one.example", "b@one.example", age=timedelta(minutes=7))
    enqueue("c@two.example")
    assert cli(config, "queue", "shape", "--json") == 0
    total, one, two = json.loads(capsys.readouterr().out)
    assert (total["total"], one["domain"], one["buckets"]["10"], two["buckets"]["5"]) == (
        3, "one.example", 2, 1)
    assert cli(config, "queue", "shape") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["T", "5", "10", "20", "40", "80", "160", "320", "640", "1280",
                                "1280+"]
    assert lines[1].split()[:4] == ["TOTAL", "3", "1", "2"]


def test_audit_verify_detects_one_row_changed_by_sql(
        config: Path, enqueue: Enqueue, runtime: Runtime,
        capsys: pytest.CaptureFixture[str]) -> None:
    message_id = enqueue("a@x.example")
    for _ in range(3):
        assert cli(config, "queue", "hold", message_id) == 0
        assert cli(config, "queue", "release", message_id) == 0
    capsys.readouterr()
    assert cli(config, "audit", "verify") == 0
    assert "audit log OK: 6 entries" in capsys.readouterr().out
    victim = runtime.audit.entries(action="queue.release")[1]["id"]
    with runtime.engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET actor = 'someone-else' WHERE id = :id"),
                           {"id": victim})
    assert cli(config, "audit", "verify") == 1
    assert f"BROKEN at entry {victim}: entry content does not match" in capsys.readouterr().out


def test_audit_verify_detects_a_removed_row(config: Path, runtime: Runtime,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    for index in range(4):
        runtime.audit.record(SYSTEM, f"test.{index}")
    ids = [e["id"] for e in runtime.audit.entries()][::-1]
    with runtime.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[1]})
    assert cli(config, "audit", "verify") == 1
    assert f"BROKEN at entry {ids[2]}: previous-hash link" in capsys.readouterr().out
    with runtime.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[0]})
    assert cli(config, "audit", "verify") == 1
    assert "links to no retention anchor" in capsys.readouterr().out


def test_audit_list_json_filters(config: Path, enqueue: Enqueue, runtime: Runtime,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    first, second = enqueue("a@x.example"), enqueue("b@x.example")
    assert cli(config, "queue", "hold", first, second) == 0
    assert cli(config, "queue", "release", first) == 0
    capsys.readouterr()
    assert cli(config, "audit", "list", "--json", "--message", first, "--since", "1h") == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["action"] for e in entries] == ["queue.release", "queue.hold"]
    assert cli(config, "audit", "list", "--json", "--action", "queue.hold", "--actor", ME) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert cli(config, "audit", "list", "--json", "--actor", "nobody-else") == 0
    assert json.loads(capsys.readouterr().out) == []
    assert cli(config, "audit", "list", "--json", "--since", "2999-01-01T00:00:00") == 0
    assert json.loads(capsys.readouterr().out) == []
