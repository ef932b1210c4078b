"""Pilot tests of the Campaigns screen: approve and pause, each effect checked in the store and
in the audit log; counters and complaint rate; a viewer refused and audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.queue import delivered
from textual.widgets import DataTable, Static

from phigate.admin import AccessDenied, ActionRefused, AdminService
from phigate.admin_tui.app import AdminApp
from phigate.admin_tui.screens.campaigns import CampaignsScreen
from phigate.admin_tui.widgets.dialogs import ConfirmDialog, ReasonDialog
from phigate.audit.log import Actor
from phigate.errors import UserError
from phigate.queue.models import MessageState
from phigate.queue.policy_models import CampaignState
from phigate.runtime import Runtime

from .conftest import STRANGER, VIEWER

Enqueue = Callable[..., str]
SIZE = (80, 24)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only, as in test_tui: the policy stores under the service run on both
    backends in tests/policy."""
    return f"sqlite:///{tmp_path / 'queue.db'}"


def waiting(enqueue: Enqueue, campaign: str, *recipients: str) -> str:
    return enqueue(*recipients, message_class="marketing", campaign_id=campaign,
                   state=MessageState.AWAITING_APPROVAL)


def text_of(app: AdminApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def row_of(app: AdminApp, campaign: str) -> list[str]:
    table = app.screen.query_one("#campaign-table", DataTable)
    return [str(cell) for cell in table.get_row(campaign)]


async def test_lists_campaigns_awaiting_first_with_counters(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    operator.policy.campaigns.approve("autumn", actor=Actor("olga"))
    enqueue("a@x.example", "b@x.example", message_class="marketing", campaign_id="autumn")
    waiting(enqueue, "winter", "c@x.example", "d@x.example", "e@x.example")
    with runtime.store.writing() as session:
        for _ in range(2):
            operator.policy.campaigns.count(session, "autumn", "unsubscribes",
                                            now=datetime.now(UTC))
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        assert isinstance(app.screen, CampaignsScreen)
        table = app.screen.query_one("#campaign-table", DataTable)
        assert [str(key.value) for key in table.rows] == ["winter", "autumn"]
        # Campaign, State, Wait, Acc, Dlv, Def, Bnc, Cmpl, Unsub, Rate
        assert row_of(app, "winter") == ["winter", "awaiting", "3", "3", "0", "0", "0", "0",
                                         "0", "0.00%"]
        assert row_of(app, "autumn") == ["autumn", "approved", "0", "2", "0", "0", "0", "0",
                                         "2", "0.00%"]
        assert "1 awaiting approval, 0 paused, 1 approved" in text_of(app, "#campaign-status")
        assert "never approved" in text_of(app, "#campaign-detail")
        await pilot.press("down")
        assert "approved by olga from local" in text_of(app, "#campaign-detail")


async def test_approve_records_who_where_and_when_and_releases_mail(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    first = waiting(enqueue, "flu-shots", "a@x.example")
    second = waiting(enqueue, "flu-shots", "b@x.example", "c@x.example")
    before = datetime.now(UTC)
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5", "a")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await pilot.pause()
        assert row_of(app, "flu-shots")[1] == "approved"
        assert "approved by otto from 203.0.113.7" in text_of(app, "#campaign-detail")
    [view] = operator.policy.campaigns.views("flu-shots")
    assert (view.state, view.approved_by, view.approved_ip) == ("approved", "otto",
                                                                "203.0.113.7")
    assert view.approved_at is not None and view.approved_at >= before.replace(microsecond=0)
    for message_id in (first, second):
        assert runtime.store.get_message(message_id).state == MessageState.ACTIVE
    [entry] = runtime.audit.entries(action="campaign.approve")
    assert (entry["actor"], entry["actor_ip"]) == ("otto", "203.0.113.7")
    assert entry["detail"]["campaign"] == "flu-shots"
    assert entry["detail"]["released_messages"] == 2


async def test_declined_approval_changes_nothing(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    message_id = waiting(enqueue, "flu-shots", "a@x.example")
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5", "a")
        await pilot.press("enter")  # the focused default button is "No"
        await pilot.pause()
        assert isinstance(app.screen, CampaignsScreen)
    assert operator.policy.campaigns.state_of("flu-shots") == CampaignState.PENDING
    assert runtime.store.get_message(message_id).state == MessageState.AWAITING_APPROVAL
    assert runtime.audit.entries() == []


async def test_pause_needs_a_reason_and_holds_queued_mail(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    operator.policy.campaigns.approve("autumn", actor=Actor("olga"))
    message_id = enqueue("a@x.example", message_class="marketing", campaign_id="autumn")
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5", "z")
        assert isinstance(app.screen, ReasonDialog)
        await pilot.press("enter")  # no reason: the dialog stays
        assert isinstance(app.screen, ReasonDialog)
        await pilot.press(*"patient complaints", "enter")
        await pilot.pause()
        assert row_of(app, "autumn")[1] == "paused"
        assert "paused: patient complaints" in text_of(app, "#campaign-detail")
        # Approving a paused campaign resumes it: the held mail goes out again.
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("escape")
    view = operator.policy.campaigns.views("autumn")[0]
    assert (view.state, view.pause_reason) == ("paused", "patient complaints")
    message = runtime.store.get_message(message_id)
    assert message.state == MessageState.HELD
    assert message.hold_reason == "campaign paused: patient complaints"
    [entry] = runtime.audit.entries(action="campaign.pause")
    assert entry["actor"] == "otto"
    assert entry["detail"] == {"campaign": "autumn", "reason": "patient complaints",
                               "held_messages": 1}


async def test_complaint_rate_over_the_threshold_is_shown(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    operator.policy.campaigns.approve("autumn", actor=Actor("olga"))
    enqueue(*(f"p{n}@x.example" for n in range(4)), message_class="marketing",
            campaign_id="autumn")
    now = datetime.now(UTC)
    for claimed in runtime.store.claim_due("t", now=now, limit=10, lease_seconds=60):
        delivered(runtime.store, claimed.recipient_id, "t", now=now)
    with runtime.store.writing() as session:
        operator.policy.campaigns.count(session, "autumn", "complaints", now=now)
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        table = app.screen.query_one("#campaign-table", DataTable)
        rate = table.get_row("autumn")[-1]
        assert str(rate) == "25.00%"
        assert "red" in str(rate.style)  # over [policy] campaign_complaint_threshold
        assert "complaint rate 25.00% (1 of 4 delivered)" in text_of(app, "#campaign-detail")


@pytest.mark.parametrize("key", ["a", "z"])
async def test_viewer_is_refused_before_any_dialog_and_audited(
        make_service: Callable[..., AdminService], enqueue: Enqueue, runtime: Runtime,
        key: str) -> None:
    message_id = waiting(enqueue, "flu-shots", "a@x.example")
    app = AdminApp(make_service(VIEWER))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("5")
        assert app.screen.query_one("#campaign-table", DataTable).row_count == 1
        await pilot.press(key)
        await pilot.pause()
        assert isinstance(app.screen, CampaignsScreen)  # no dialog for a viewer
        [notice] = list(app._notifications)
        action = "campaign.approve" if key == "a" else "campaign.pause"
        assert f"vera may not run {action}" in notice.message
        assert notice.severity == "error"
    assert make_service().policy.campaigns.state_of("flu-shots") == CampaignState.PENDING
    assert runtime.store.get_message(message_id).state == MessageState.AWAITING_APPROVAL
    [entry] = runtime.audit.entries()
    assert (entry["action"], entry["actor"], entry["detail"]) == (
        "action.denied", "vera", {"action": action, "role": "viewer"})


def test_service_refuses_viewer_actions_and_audits_each(viewer: AdminService,
                                                         runtime: Runtime) -> None:
    with pytest.raises(AccessDenied):
        viewer.approve_campaign("flu-shots")
    with pytest.raises(AccessDenied):
        viewer.pause_campaign("flu-shots", reason="no")
    assert viewer.campaigns() == []  # looking is allowed
    denied = [e["detail"]["action"] for e in runtime.audit.entries(action="action.denied")]
    assert sorted(denied) == ["campaign.approve", "campaign.pause"]


def test_service_pause_checks_reason_and_id(operator: AdminService) -> None:
    with pytest.raises(ActionRefused, match="needs a reason"):
        operator.pause_campaign("autumn", reason="  ")
    with pytest.raises(UserError, match="not a campaign id"):
        operator.pause_campaign("bad id!", reason="x")
    assert operator.campaigns() == []


def test_stranger_may_not_even_list(make_service: Callable[..., AdminService],
                                    runtime: Runtime) -> None:
    with pytest.raises(AccessDenied):
        make_service(STRANGER).campaigns()
    assert runtime.audit.entries()[0]["detail"]["action"] == "campaign.list"


async def test_keys_panel_lists_every_binding(operator: AdminService) -> None:
    # An 80-column footer cannot show F5/F6; "?" opens the panel that lists them all.
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert app.screen.query("HelpPanel")
        await pilot.press("question_mark")
        assert not app.screen.query("HelpPanel")
        await pilot.press("6")
        assert type(app.screen).__name__ == "SuppressionsScreen"


async def test_selected_campaign_shows_estimated_opens_and_hourly_sparklines(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    from datetime import timedelta

    from textual.widgets import Sparkline

    from phigate.policy.open_tracking import FetchKind, OpenStore

    operator.policy.campaigns.approve("autumn", actor=Actor("olga"))
    enqueue(*(f"p{n}@x.example" for n in range(6)), message_class="marketing",
            campaign_id="autumn")
    start = datetime.now(UTC) - timedelta(hours=3)
    for n, claimed in enumerate(runtime.store.claim_due("t", now=datetime.now(UTC), limit=10,
                                                        lease_seconds=600)):
        delivered(runtime.store, claimed.recipient_id, "t", now=start + timedelta(hours=n % 3))
    opens = OpenStore(runtime.store)
    for n, kind in enumerate((FetchKind.OPEN, FetchKind.OPEN, FetchKind.PROXY)):
        opens.record("autumn", bytes([n]) * 10, kind, now=start + timedelta(hours=2))
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await pilot.pause()
        shown = text_of(app, "#campaign-detail")
        assert "opens: 2 estimated unique (33.3% of delivered); 1 proxy fetches apart" in shown
        assert "sent 6  delivered 6" in shown and "@" not in shown
        # hour by hour up to now, when the message was accepted
        assert app.screen.query_one("#cs-delivered", Sparkline).data == [2.0, 2.0, 2.0, 0.0]
        assert app.screen.query_one("#cs-opens", Sparkline).data == [0.0, 0.0, 2.0, 0.0]
        assert "opens/h (est.)" in text_of(app, "#cs-label-opens")
