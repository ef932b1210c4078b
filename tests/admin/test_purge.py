"""Retention: bodies unreadable after purge, metadata kept, held and quarantined mail untouched."""

from __future__ import annotations

import dataclasses
import getpass
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers.queue import delivered

from phigate.admin import AccessDenied, AdminService
from phigate.admin.retention import purge
from phigate.audit import log as audit_module
from phigate.audit.log import SYSTEM, Actor
from phigate.cli.main import main
from phigate.config import RetentionSettings
from phigate.queue.crypto import DecryptionError
from phigate.queue.models import MessageState
from phigate.queue.store import UnknownMessage
from phigate.runtime import Runtime

from .conftest import VIEWER

Enqueue = Callable[..., str]
NOW = datetime.now(UTC)
RETENTION = RetentionSettings(body_days=30, metadata_days=365)


def finish(runtime: Runtime, message_id: str, at: datetime) -> None:
    """Deliver every recipient of the message, as the scheduler would, at ``at``."""
    claimed = runtime.store.claim_due("test", now=at + timedelta(days=3650), limit=1000,
                                      lease_seconds=60)
    for item in claimed:
        if item.message_id == message_id:
            assert delivered(runtime.store, item.recipient_id, "test", now=at)
    runtime.store.release_leases("test")


def test_purge_shreds_old_bodies_keeps_metadata_and_never_touches_held_mail(
        runtime: Runtime, enqueue: Enqueue) -> None:
    old_done = enqueue("a@x.example", age=timedelta(days=40))
    finish(runtime, old_done, NOW - timedelta(days=31))
    recent_done = enqueue("b@x.example", age=timedelta(days=10))
    finish(runtime, recent_done, NOW - timedelta(days=9))
    held = enqueue("c@x.example", age=timedelta(days=90), state=MessageState.HELD)
    quarantined = enqueue("d@x.example", age=timedelta(days=90),
                          state=MessageState.QUARANTINED)

    dry = purge(runtime.engine, runtime.audit, RETENTION, SYSTEM, now=NOW, dry_run=True)
    assert (dry.bodies_destroyed, dry.messages_removed, dry.kept_for_review) == (1, 0, 2)
    assert runtime.store.read_body(old_done)  # a dry run changes nothing

    report = purge(runtime.engine, runtime.audit, RETENTION, SYSTEM, now=NOW)
    assert (report.bodies_destroyed, report.messages_removed, report.kept_for_review) == (1, 0, 2)
    with pytest.raises(DecryptionError):
        runtime.store.read_body(old_done)
    view = runtime.store.get_message(old_done)
    assert view.purged and view.sender == "desk@practice.test"
    assert [r.address for r in view.recipients] == ["a@x.example"]
    for kept in (recent_done, held, quarantined):
        assert b"MRN 48213977" in runtime.store.read_body(kept)
    assert runtime.store.get_message(held).state == MessageState.HELD
    entry = runtime.audit.entries(action="retention.purge")[0]
    assert entry["detail"] == {"bodies_destroyed": 1, "messages_removed": 0,
                               "kept_for_review": 2}


def test_metadata_and_audit_entries_go_after_the_retention_period_chain_still_verifies(
        runtime: Runtime, enqueue: Enqueue, make_service: Callable[..., AdminService],
        monkeypatch: pytest.MonkeyPatch) -> None:
    ancient = enqueue("a@x.example", age=timedelta(days=400))
    finish(runtime, ancient, NOW - timedelta(days=399))
    monkeypatch.setattr(audit_module, "utcnow", lambda: NOW - timedelta(days=380))
    for index in range(3):
        runtime.audit.record(Actor("otto"), f"old.{index}", message_id=ancient)
    monkeypatch.setattr(audit_module, "utcnow", lambda: NOW - timedelta(days=10))
    runtime.audit.record(Actor("otto"), "recent.action")
    monkeypatch.undo()

    report = purge(runtime.engine, runtime.audit, RETENTION, SYSTEM, now=NOW)
    assert (report.messages_removed, report.bodies_destroyed, report.audit_entries_removed) == (
        1, 0, 3)
    with pytest.raises(UnknownMessage):
        runtime.store.get_message(ancient)
    assert [e["action"] for e in runtime.audit.entries()] == ["retention.purge", "recent.action"]
    chain = make_service().verify_audit()
    assert chain.ok and chain.anchored and chain.checked == 2
    # A second run removes nothing more and the chain still starts at the recorded anchor.
    purge(runtime.engine, runtime.audit, RETENTION, SYSTEM, now=NOW)
    assert make_service().verify_audit().ok


def test_only_operators_or_the_service_user_may_purge(
        make_service: Callable[..., AdminService], runtime: Runtime) -> None:
    with pytest.raises(AccessDenied):
        make_service(VIEWER).purge()
    assert runtime.audit.entries(limit=1)[0]["detail"] == {"action": "retention.purge",
                                                           "role": "viewer"}
    service_user = make_service(dataclasses.replace(VIEWER, user="phigate"))
    assert service_user.purge(dry_run=True).dry_run


def test_purge_cli_runs_without_the_master_key(
        runtime: Runtime, enqueue: Enqueue, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    held = enqueue("c@x.example", age=timedelta(days=90), state=MessageState.HELD)
    config = tmp_path / "purge.toml"
    config.write_text(
        f"[storage]\nurl = \"{runtime.settings.storage.url}\"\n"
        f"master_key_file = \"{tmp_path / 'no-such.key'}\"\n"
        f"[admin]\noperators = [\"{getpass.getuser()}\"]\n"
    )
    assert main(["--config", str(config), "purge", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "0 message bodies would be destroyed" in out
    assert "1 held, quarantined, corrupt or unapproved messages" in out and "NOT purged" in out
    assert main(["--config", str(config), "purge", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kept_for_review"] == 1
    assert runtime.store.get_message(held).state == MessageState.HELD


def test_purge_forgets_expired_tokens_and_destroys_expired_pickup_keys(
        runtime: Runtime, enqueue: Enqueue) -> None:
    """Issue 13: what maps an expired unsubscribe/VERP token to its patient, and the key of
    an expired pickup, do not outlive their use (the purge timer runs without delivery)."""
    from sqlalchemy import select

    from phigate.policy.token_registry import SqlTokenRegistry
    from phigate.policy.tokens import TokenClaims, TokenSigner
    from phigate.queue.pickup_models import Pickup, PickupState

    registry = SqlTokenRegistry(runtime.engine)
    signer = TokenSigner(b"purge-test-token-key-0123456789!", registry,
                         clock=lambda: NOW - timedelta(days=61))
    old_verp = signer.make(TokenClaims("verp", "old@x.example"))  # 60 days: expired
    live = signer.make(TokenClaims("unsubscribe", "live@x.example", campaign="flu"))
    message_id = enqueue("a@x.example", "b@x.example")
    recipients = runtime.store.get_message(message_id).recipients
    with runtime.store.writing() as session:
        for recipient, expires in zip(recipients, (NOW - timedelta(hours=1),
                                                   NOW + timedelta(days=3)), strict=True):
            session.add(Pickup(
                token_hash=f"{recipient.id:064x}", message_id=message_id,
                recipient_id=recipient.id, address=recipient.address,
                sender="desk@practice.test", message_class="treatment",
                state=PickupState.WAITING, created_at=NOW - timedelta(days=30),
                expires_at=expires, key_id="k", wrapped_key=b"wrapped-key-bytes",
                nonce=b"n" * 12, ciphertext=b"sealed", code_hash="c" * 64))

    dry = purge(runtime.engine, runtime.audit, RETENTION, SYSTEM, now=NOW, dry_run=True)
    assert (dry.tokens_removed, dry.pickups_expired) == (1, 1)
    assert registry.lookup(signer.token_id(old_verp) or "") is not None  # dry: unchanged

    report = purge(runtime.engine, runtime.audit, RETENTION, SYSTEM, now=NOW)
    assert (report.tokens_removed, report.pickups_expired) == (1, 1)
    assert registry.lookup(signer.token_id(old_verp) or "") is None
    assert signer.parse(old_verp) is None
    assert registry.lookup(signer.token_id(live) or "") is not None
    with runtime.store.reading() as session:
        rows = {row.address: row for row in session.scalars(select(Pickup))}
    expired, waiting = rows["a@x.example"], rows["b@x.example"]
    assert expired.state is PickupState.EXPIRED and expired.destroyed_at is not None
    assert (expired.wrapped_key, expired.ciphertext, expired.code_hash) == (None, None, None)
    assert waiting.state is PickupState.WAITING and waiting.wrapped_key == b"wrapped-key-bytes"
    assert [e["detail"] for e in runtime.audit.entries(action="pickup_expired")] == [
        {"pickup": expired.id}]
    detail = runtime.audit.entries(action="retention.purge")[0]["detail"]
    assert (detail["tokens_removed"], detail["pickups_expired"]) == (1, 1)
    # Nothing left to do: a second run changes nothing.
    again = purge(runtime.engine, runtime.audit, RETENTION, SYSTEM, now=NOW)
    assert (again.tokens_removed, again.pickups_expired) == (0, 0)
