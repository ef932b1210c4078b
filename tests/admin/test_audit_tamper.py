"""Issue 13 finding 5: the audit log could be rewritten without a trace. Each test tampers
by SQL exactly as the finding did, and `audit verify` must now say BROKEN:

- deleting the newest entries (the chain still linked; now the signed checkpoint names
  an entry that is gone);
- rewriting ``approved_ip`` in every approval entry and recomputing the hashes with
  ``phigate.audit.log.entry_hash`` (plain SHA-256; now the chain is an HMAC under a key
  outside the database);
- ``UPDATE campaigns SET approved_by=…, approved_ip=…`` (now the row carries the hash of
  its audit entry, which says otherwise).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from phigate.admin import AdminService
from phigate.audit.checkpoint import CheckpointFile
from phigate.audit.keys import AuditKey, generate_audit_key
from phigate.audit.log import GENESIS_HASH, entry_hash
from phigate.cli.main import main
from phigate.config import Settings
from phigate.queue.models import AuditEvent
from phigate.runtime import Runtime


@pytest.fixture
def audit_key(tmp_path: Path) -> Path:
    path = tmp_path / "audit.key"
    path.write_bytes(generate_audit_key())
    path.chmod(0o600)
    return path


@pytest.fixture
def settings(make_settings: Callable[..., Settings], audit_key: Path, tmp_path: Path
             ) -> Settings:
    return make_settings(audit={"key_file": str(audit_key),
                                "checkpoint_file": str(tmp_path / "audit.checkpoint")})


@pytest.fixture
def operator(make_service: Callable[..., AdminService]) -> AdminService:
    service = make_service()
    service.approve_campaign("spring-recall")
    service.grant_consent("pat@example.org", "marketing", evidence="signed form 12")
    service.approve_campaign("flu-2026")
    service.add_suppression("gone@example.org", "all", reason="patient moved")
    return service


def execute(runtime: Runtime, statement: str, **params: object) -> None:
    with runtime.engine.begin() as connection:
        connection.execute(sa.text(statement), params)


def problem(service: AdminService) -> str:
    report = service.verify_audit()
    assert not report.ok, "tampering went unnoticed"
    assert report.broken is not None
    return report.broken.problem


def test_untouched_log_verifies_keyed_with_checkpoint_and_records(
        operator: AdminService, runtime: Runtime) -> None:
    report = operator.verify_audit()
    assert report.ok, report.broken
    assert report.keyed == report.checked >= 4
    assert report.checkpoint is not None and report.checkpoint.index >= 4
    assert report.records_checked == 3  # two approvals, one consent


def test_deleting_the_newest_entries_is_detected(operator: AdminService,
                                                 runtime: Runtime) -> None:
    execute(runtime, "DELETE FROM audit_events WHERE id > "
                     "(SELECT max(id) - 2 FROM audit_events)")
    assert "newest entries were removed" in problem(operator)


def test_rewriting_approved_ip_and_recomputing_plain_hashes_is_detected(
        operator: AdminService, runtime: Runtime) -> None:
    # The attacker's tool: read every entry, change the IP, recompute the plain chain.
    with Session(runtime.engine) as session, session.begin():
        prev = GENESIS_HASH
        for entry in session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)):
            detail = dict(entry.detail)
            if entry.action == "campaign.approve":
                detail["approved_ip"] = "198.51.100.66"
            digest = entry_hash(prev, entry.at, entry.actor, entry.actor_ip, entry.action,
                                entry.message_id, detail)
            session.execute(sa.update(AuditEvent).where(AuditEvent.id == entry.id).values(
                detail=detail, prev_hash=prev, hash=digest))
            prev = digest
        session.execute(sa.text("UPDATE campaigns SET approved_ip = '198.51.100.66'"))
    assert "not match its hash" in problem(operator) or "rebuilt" in problem(operator)


def test_update_campaigns_approved_by_is_detected(operator: AdminService,
                                                  runtime: Runtime) -> None:
    execute(runtime, "UPDATE campaigns SET approved_by = 'mallory', "
                     "approved_ip = '203.0.113.99' WHERE id = 'flu-2026'")
    assert "campaign flu-2026: approval does not match" in problem(operator)


def test_a_consent_flipped_by_sql_is_detected(operator: AdminService,
                                              runtime: Runtime) -> None:
    execute(runtime, "UPDATE consents SET address = 'other@example.org'")
    assert "consent record" in problem(operator)


def test_a_removed_or_foreign_checkpoint_is_detected(
        operator: AdminService, settings: Settings, tmp_path: Path) -> None:
    checkpoint = Path(settings.audit.checkpoint_file)
    saved = checkpoint.read_text()
    os.unlink(checkpoint)
    assert "no audit checkpoint" in problem(operator)
    stranger = AuditKey(os.urandom(32))
    forged = CheckpointFile(checkpoint, stranger)
    forged.publish(1, "0" * 64, datetime.now(UTC))
    assert "signature" in problem(operator)
    checkpoint.write_text(saved)
    assert operator.verify_audit().ok


def test_audit_verify_cli_exits_1_after_truncation(
        operator: AdminService, runtime: Runtime, settings: Settings, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "phigate.toml"
    config.write_text(
        f'[server]\nstate_dir = "{tmp_path}"\n'
        f'[storage]\nurl = "{settings.storage.url}"\n'
        f'master_key_file = "{settings.storage.master_key_file}"\n'
        f'[audit]\nkey_file = "{settings.audit.key_file}"\n'
        f'checkpoint_file = "{settings.audit.checkpoint_file}"\n')
    assert main(["--config", str(config), "audit", "verify"]) == 0
    assert "signed checkpoint at entry" in capsys.readouterr().out
    execute(runtime, "DELETE FROM audit_events WHERE id = (SELECT max(id) FROM audit_events)")
    assert main(["--config", str(config), "audit", "verify"]) == 1
    assert "BROKEN" in capsys.readouterr().out
