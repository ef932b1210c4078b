"""Snapshots of the main screens at 80x24 and at a large size, on a fixed queue and clock.

Update after an intended change: ``pytest tests/admin/test_tui_snapshots.py --snapshot-update``
and look at the report before committing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.queue import deferred, delivered
from textual.pilot import Pilot

from phigate.admin import AdminService
from phigate.admin_tui.app import AdminApp
from phigate.audit.log import Actor
from phigate.policy.consent import ConsentChange
from phigate.queue import store as store_module
from phigate.queue.models import DeferReason, MessageClass, MessageState
from phigate.queue.store import NewMessage
from phigate.runtime import Runtime

from .conftest import BODY, OPERATOR

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LARGE = (140, 40)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'queue.db'}"


@pytest.fixture
def seeded(runtime: Runtime, make_service: Callable[..., AdminService],
           monkeypatch: pytest.MonkeyPatch) -> AdminService:
    counter = itertools.count(1)
    monkeypatch.setattr(store_module, "new_message_id", lambda: f"MSG{next(counter):018d}")
    store = runtime.store

    def put(recipients: list[str], minutes: int, **fields: Any) -> str:
        return store.enqueue(NewMessage(sender="desk@practice.test", recipients=recipients,
                                        body=BODY, **fields),
                             now=NOW - timedelta(minutes=minutes))

    for index in range(6):
        put([f"patient{index}@mail.example", f"family{index}@inbox.example"], 3 + index * 9)
    put(["news@list.example"], 300, state=MessageState.QUARANTINED, phi_verdict="phi",
        phi_categories=["MEDICAL_RECORD_NUMBER"], message_class=MessageClass.MARKETING,
        hold_reason="PHI in marketing mail", rule_hits=[{"rule": "phi-marketing",
                                                          "action": "quarantine",
                                                          "reason": "PHI in marketing mail"}])
    put(["slow@far.example"], 95, phi_verdict="phi")
    for claimed in store.claim_due("snap", now=NOW, limit=100, lease_seconds=60):
        if claimed.domain == "far.example":
            deferred(store, claimed.recipient_id, "snap", now=NOW - timedelta(minutes=20),
                     next_attempt_at=NOW, code=None, host="mx.far.example",
                     reason=DeferReason.TLS_REQUIRED,
                     text="TLS required for PHI: mx.far.example offers no STARTTLS")
        elif claimed.domain == "mail.example" and claimed.address < "patient3":
            delivered(store, claimed.recipient_id, "snap", now=NOW - timedelta(minutes=7))
    store.release_leases("snap")
    return make_service(OPERATOR, now=NOW)


async def _settle(pilot: Pilot[Any]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def _open(*keys: str) -> Callable[[Pilot[Any]], Any]:
    async def run(pilot: Pilot[Any]) -> None:
        await _settle(pilot)
        await pilot.press(*keys)
        await _settle(pilot)

    return run


@pytest.mark.parametrize("size", [(80, 24), LARGE], ids=["80x24", "large"])
@pytest.mark.parametrize(("screen", "keys"), [
    ("dashboard", ()),
    ("queue", ("2",)),
    ("message", ("3", "enter")),
    ("quarantine", ("3",)),
])
def test_screen_snapshot(snap_compare: Any, seeded: AdminService, screen: str,
                         keys: tuple[str, ...], size: tuple[int, int]) -> None:
    assert snap_compare(AdminApp(seeded), terminal_size=size, run_before=_open(*keys))


@pytest.fixture
def policy_seeded(seeded: AdminService) -> AdminService:
    """The queue above plus campaigns in each state, suppressions and consent entries."""
    store, policy = seeded.store, seeded.policy
    otto = Actor("otto", "203.0.113.7")

    def put(recipients: list[str], campaign: str, **fields: Any) -> None:
        store.enqueue(NewMessage(sender="news@practice.test", recipients=recipients, body=BODY,
                                 message_class=MessageClass.MARKETING, campaign_id=campaign,
                                 **fields),
                      now=NOW - timedelta(minutes=30))

    put(["a@mail.example", "b@mail.example", "c@mail.example"], "flu-shots-2026",
        state=MessageState.AWAITING_APPROVAL)
    policy.campaigns.approve("spring-newsletter", actor=otto, now=NOW - timedelta(days=2))
    put([f"reader{n}@news.example" for n in range(4)], "spring-newsletter")
    for claimed in store.claim_due("snap2", now=NOW, limit=100, lease_seconds=60):
        if claimed.domain == "news.example" and claimed.address != "reader3@news.example":
            delivered(store, claimed.recipient_id, "snap2", now=NOW)
    store.release_leases("snap2")
    with store.writing() as session:
        policy.campaigns.count(session, "spring-newsletter", "complaints", now=NOW)
        policy.campaigns.count(session, "spring-newsletter", "unsubscribes", now=NOW)
    policy.campaigns.approve("recall-reminders", actor=Actor("olga"),
                             now=NOW - timedelta(days=9))
    policy.campaigns.pause("recall-reminders", "complaint rate 0.41% over 0.30%", actor=otto,
                           now=NOW - timedelta(days=1))
    for days, (address, scope, kind, reason) in enumerate([
            ("gone@mail.example", "all", "hard_bounce", "550 5.1.1 user unknown"),
            ("quiet@inbox.example", "marketing", "unsubscribe", "one-click unsubscribe"),
            ("angry@inbox.example", "marketing", "complaint", "ARF abuse report")], start=1):
        policy.suppressions.add(address, scope, kind=kind, reason=reason, source="feedback",
                                actor=otto, now=NOW - timedelta(days=days))
    for hours, (address, purpose, action, evidence) in enumerate([
            ("pat@mail.example", "marketing", "grant", "portal form 118"),
            ("pat@mail.example", "email_phi", "grant", "signed form 2291"),
            ("lee@inbox.example", "marketing", "grant", "front desk"),
            ("lee@inbox.example", "marketing", "revoke", "phone call")], start=1):
        policy.consents.apply(ConsentChange(address, purpose, action, source="ehr",
                                            evidence=evidence),
                              actor=otto, now=NOW - timedelta(hours=10 - hours))
    return seeded


@pytest.mark.parametrize("size", [(80, 24), LARGE], ids=["80x24", "large"])
@pytest.mark.parametrize(("screen", "keys"), [
    ("campaigns", ("5",)),
    ("suppressions", ("6",)),
    ("consent-history", ("6", "tab", "enter")),
])
def test_policy_screen_snapshot(snap_compare: Any, policy_seeded: AdminService, screen: str,
                                keys: tuple[str, ...], size: tuple[int, int]) -> None:
    assert snap_compare(AdminApp(policy_seeded), terminal_size=size, run_before=_open(*keys))


@pytest.fixture
def audited(seeded: AdminService, monkeypatch: pytest.MonkeyPatch) -> AdminService:
    """Two audit entries at fixed times: a release with a long reason, and a PHI reveal."""
    from phigate.audit import log as audit_log

    times = iter([NOW - timedelta(minutes=30), NOW - timedelta(minutes=5)])
    monkeypatch.setattr(audit_log, "utcnow", lambda: next(times))
    otto = Actor("otto", "203.0.113.7")
    seeded.audit.record(otto, "queue.release", message_id="MSG000000000000000007",
                        detail={"reason": "checked with Dr. Lee: the reminder carries no "
                                          "diagnosis and the patient asked for e-mail",
                                "state": "quarantined"})
    seeded.audit.record(otto, "message.reveal", message_id="MSG000000000000000007",
                        detail={"part": 1})
    return seeded


@pytest.mark.parametrize("size", [(80, 24), LARGE], ids=["80x24", "large"])
@pytest.mark.parametrize(("screen", "keys"), [("audit", ("4",)),
                                              ("audit-detail", ("4", "down", "enter"))])
def test_audit_snapshot(snap_compare: Any, audited: AdminService, screen: str,
                        keys: tuple[str, ...], size: tuple[int, int]) -> None:
    assert snap_compare(AdminApp(audited), terminal_size=size, run_before=_open(*keys))


@pytest.fixture
def campaign_history(policy_seeded: AdminService) -> AdminService:
    """autumn-recall: 120 recipients delivered over twelve hours, a few bounces and
    complaints, and estimated opens (proxy fetches apart)."""
    from sqlalchemy import select

    from phigate.policy.open_tracking import FetchKind, OpenStore
    from phigate.queue.models import Attempt, Recipient, RecipientState
    from phigate.queue.policy_models import FeedbackEvent

    store, campaigns = policy_seeded.store, policy_seeded.policy.campaigns
    campaigns.approve("autumn-recall", actor=Actor("otto", "203.0.113.7"),
                      now=NOW - timedelta(hours=13))
    message_id = store.enqueue(NewMessage(
        sender="news@practice.test", recipients=[f"r{n}@mail.example" for n in range(120)],
        body=BODY, message_class=MessageClass.MARKETING, campaign_id="autumn-recall"),
        now=NOW - timedelta(hours=13))
    with store.writing() as session:
        recipients = session.scalars(select(Recipient).where(
            Recipient.message_id == message_id).order_by(Recipient.id)).all()
        for n, recipient in enumerate(recipients):
            bounced = n % 23 == 5
            recipient.state = RecipientState.BOUNCED if bounced else RecipientState.DELIVERED
            recipient.last_code = 550 if bounced else 250
            recipient.last_text = "5.1.1 user unknown" if bounced else "ok"
            at = NOW - timedelta(hours=12 - (n * 5) % 12)
            session.add(Attempt(recipient_id=recipient.id, message_id=message_id,
                                started_at=at, code=recipient.last_code, permanent=bounced))
        for hours in (9, 4):
            session.add(FeedbackEvent(received_at=NOW - timedelta(hours=hours),
                                      kind="complaint", campaign_id="autumn-recall",
                                      recipients=[]))
            campaigns.count(session, "autumn-recall", "complaints", now=NOW)
    opens = OpenStore(store)
    for n in range(70):
        opens.record("autumn-recall", n.to_bytes(10, "big"),
                     FetchKind.PROXY if n % 5 == 0 else FetchKind.OPEN,
                     now=NOW - timedelta(hours=11 - (n * 7) % 11))
    return policy_seeded


@pytest.mark.parametrize("size", [(80, 24), LARGE], ids=["80x24", "large"])
def test_campaign_results_snapshot(snap_compare: Any, campaign_history: AdminService,
                                   size: tuple[int, int]) -> None:
    """The campaign screen on a campaign with results: rates, estimated opens, sparklines."""
    assert snap_compare(AdminApp(campaign_history), terminal_size=size,
                        run_before=_open("5", "down", "down"))
