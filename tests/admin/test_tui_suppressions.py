"""Pilot tests of the Suppressions and consent screen: search, add, lift, grant, revoke and the
history; each effect checked in the store and in the audit log; a viewer refused and audited."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static

from phigate.admin import AccessDenied, ActionRefused, AdminService
from phigate.admin_tui.app import AdminApp
from phigate.admin_tui.screens.suppressions import AddressForm, HistoryDialog, SuppressionsScreen
from phigate.admin_tui.widgets.dialogs import ReasonDialog
from phigate.audit.log import Actor
from phigate.policy.consent import ConsentChange
from phigate.queue.models import RecipientState
from phigate.runtime import Runtime

from .conftest import VIEWER

Enqueue = Callable[..., str]
SIZE = (80, 24)
DESK = Actor("desk")


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only, as in test_tui: the policy stores under the service run on both
    backends in tests/policy."""
    return f"sqlite:///{tmp_path / 'queue.db'}"


@pytest.fixture
def listed(operator: AdminService) -> AdminService:
    """Two suppressions and three consent entries (one revoked), recorded by the stores."""
    policy = operator.policy
    policy.suppressions.add("gone@mail.example", "all", kind="hard_bounce",
                            reason="550 5.1.1 user unknown", source="feedback", actor=DESK)
    policy.suppressions.add("quiet@inbox.example", "marketing", kind="unsubscribe",
                            reason="one-click", source="http", actor=DESK)
    for address, purpose, action in [("pat@mail.example", "marketing", "grant"),
                                      ("lee@inbox.example", "marketing", "grant"),
                                      ("lee@inbox.example", "marketing", "revoke"),
                                      ("lee@inbox.example", "email_phi", "grant")]:
        policy.consents.apply(ConsentChange(address, purpose, action, source="ehr",
                                            evidence=f"{action} note"), actor=DESK)
    return operator


def rows(app: AdminApp, table_id: str) -> list[list[str]]:
    table = app.screen.query_one(table_id, DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def status(app: AdminApp) -> str:
    return str(app.screen.query_one("#suppression-status", Static).render())


async def fill_form(pilot: Pilot[None], address: str, choice: str, text: str) -> None:
    app = pilot.app
    assert isinstance(app.screen, AddressForm)
    app.screen.query_one("#form-address", Input).value = address
    app.screen.query_one("#form-choice", Select).value = choice
    await pilot.click("#form-text")
    await pilot.press(*text, "enter")
    await pilot.pause()


async def test_lists_and_searches_by_part_of_an_address(listed: AdminService,
                                                        runtime: Runtime) -> None:
    app = AdminApp(listed)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("6")
        assert isinstance(app.screen, SuppressionsScreen)
        assert [r[:3] for r in rows(app, "#suppression-table")] == [
            ["quiet@inbox.example", "marketing", "unsubscribe"],  # newest first
            ["gone@mail.example", "all", "hard_bounce"]]
        assert sorted(r[:3] for r in rows(app, "#consent-table")) == [
            ["lee@inbox.example", "email-phi", "granted"],
            ["lee@inbox.example", "marketing", "revoked"],
            ["pat@mail.example", "marketing", "granted"]]
        assert "2 suppression(s), 3 consent(s)" in status(app)
        await pilot.press("slash", *"INBOX", "enter")
        assert [r[0] for r in rows(app, "#suppression-table")] == ["quiet@inbox.example"]
        assert {r[0] for r in rows(app, "#consent-table")} == {"lee@inbox.example"}
        assert "1 suppression(s), 2 consent(s) matching 'INBOX'" in status(app)
    assert runtime.audit.entries(action="action.denied") == []


async def test_add_suppression_cancels_queued_mail_and_is_audited(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    message_id = enqueue("pat@mail.example")  # a reminder: scope "all" stops it too
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("6", "slash", *"pat@mail.example", "enter", "a")
        assert isinstance(app.screen, AddressForm)
        # The searched address is offered; a reason is required.
        assert app.screen.query_one("#form-address", Input).value == "pat@mail.example"
        await pilot.press("enter")
        assert isinstance(app.screen, AddressForm)
        await fill_form(pilot, "Pat@Mail.example", "all", "patient asked: no email at all")
        assert isinstance(app.screen, SuppressionsScreen)
        assert rows(app, "#suppression-table")[0][:3] == ["pat@mail.example", "all", "manual"]
    [entry] = operator.policy.suppressions.entries()
    assert (entry.address, entry.scope, entry.kind, entry.reason, entry.source) == (
        "pat@mail.example", "all", "manual", "patient asked: no email at all", "tui:otto")
    [recipient] = runtime.store.get_message(message_id).recipients
    assert recipient.state == RecipientState.CANCELLED
    [audit] = runtime.audit.entries(action="suppression.add")
    assert (audit["actor"], audit["actor_ip"]) == ("otto", "203.0.113.7")
    assert audit["detail"]["reason"] == "patient asked: no email at all"
    assert audit["detail"]["cancelled_messages"] == [message_id]


async def test_lift_needs_a_reason_and_records_it(listed: AdminService,
                                                  runtime: Runtime) -> None:
    app = AdminApp(listed)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("6", "down", "x")  # the older entry: gone@mail.example
        assert isinstance(app.screen, ReasonDialog)
        await pilot.press("enter")
        assert isinstance(app.screen, ReasonDialog)  # no reason, no change
        await pilot.press(*"mailbox works again", "enter")
        await pilot.pause()
        assert [r[0] for r in rows(app, "#suppression-table")] == ["quiet@inbox.example"]
    assert [e.address for e in listed.policy.suppressions.entries()] == [
        "quiet@inbox.example"]
    [audit] = runtime.audit.entries(action="suppression.remove")
    assert audit["actor"] == "otto"
    assert audit["detail"] == {"address": "gone@mail.example", "scope": "all", "removed": 1,
                               "reason": "mailbox works again"}


async def test_grant_consent_with_evidence(operator: AdminService, runtime: Runtime) -> None:
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("6", "c")
        await fill_form(pilot, "new@mail.example", "email_phi", "signed form 2291")
        assert rows(app, "#consent-table")[0][:3] == ["new@mail.example", "email-phi",
                                                      "granted"]
    [entry] = operator.policy.consents.entries()
    assert (entry.address, entry.purpose, entry.granted, entry.evidence, entry.source) == (
        "new@mail.example", "email_phi", True, "signed form 2291", "tui:otto")
    [audit] = runtime.audit.entries(action="consent.grant")
    assert audit["actor"] == "otto" and audit["detail"]["evidence"] == "signed form 2291"


async def test_revoke_consent_cancels_queued_marketing_and_shows_history(
        listed: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    marketing = enqueue("pat@mail.example", message_class="marketing")
    reminder = enqueue("pat@mail.example")
    app = AdminApp(listed)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("6", "slash", *"pat@", "enter", "tab")
        assert app.focused is app.screen.query_one("#consent-table", DataTable)
        await pilot.press("v")
        assert isinstance(app.screen, ReasonDialog)
        await pilot.press(*"phoned to opt out", "enter")
        await pilot.pause()
        assert rows(app, "#consent-table")[0][:3] == ["pat@mail.example", "marketing",
                                                      "revoked"]
        await pilot.press("v")  # already revoked: a notice, no dialog
        assert isinstance(app.screen, SuppressionsScreen)
        await pilot.press("enter")
        assert isinstance(app.screen, HistoryDialog)
        history = str(app.screen.query_one("#history", Static).render())
        assert "grant   marketing" in history and "revoke  marketing" in history
        assert "evidence phoned to opt out" in history and "by otto" in history
        await pilot.press("escape")
        assert isinstance(app.screen, SuppressionsScreen)
    [entry] = listed.consents("pat@mail.example")
    assert (entry.granted, entry.evidence) == (False, "phoned to opt out")
    assert runtime.store.get_message(marketing).recipients[0].state == RecipientState.CANCELLED
    assert runtime.store.get_message(reminder).recipients[0].state == RecipientState.QUEUED
    [audit] = runtime.audit.entries(action="consent.revoke", actor="otto")
    assert audit["detail"]["address"] == "pat@mail.example"
    assert audit["detail"]["cancelled_messages"] == [marketing]


@pytest.mark.parametrize(("keys", "action"), [
    (("a",), "suppression.add"),
    (("x",), "suppression.remove"),
    (("c",), "consent.grant"),
    (("tab", "v"), "consent.revoke"),
])
async def test_viewer_is_refused_before_any_dialog_and_audited(
        listed: AdminService, make_service: Callable[..., AdminService], runtime: Runtime,
        keys: tuple[str, ...], action: str) -> None:
    app = AdminApp(make_service(VIEWER))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("6", *keys)
        await pilot.pause()
        assert isinstance(app.screen, SuppressionsScreen)  # no dialog for a viewer
        [notice] = list(app._notifications)
        assert f"vera may not run {action}" in notice.message
        assert notice.severity == "error"
    assert len(listed.policy.suppressions.entries()) == 2
    assert len(listed.consents()) == 3
    [entry] = runtime.audit.entries(action="action.denied")
    assert (entry["actor"], entry["detail"]) == ("vera", {"action": action, "role": "viewer"})


def test_service_refuses_viewer_changes_and_audits_each(
        listed: AdminService, viewer: AdminService, runtime: Runtime) -> None:
    attempts: list[Callable[[], object]] = [
        lambda: viewer.add_suppression("a@x.example", "all", reason="r"),
        lambda: viewer.remove_suppression("gone@mail.example", reason="r"),
        lambda: viewer.grant_consent("a@x.example", "marketing", evidence="e"),
        lambda: viewer.revoke_consent("pat@mail.example", "marketing", evidence="e"),
    ]
    for attempt in attempts:
        with pytest.raises(AccessDenied):
            attempt()
    # Looking is allowed.
    assert len(viewer.suppressions()) == 2 and len(viewer.consent_history("lee@inbox.example"))
    denied = [e["detail"]["action"] for e in runtime.audit.entries(action="action.denied")]
    assert sorted(denied) == ["consent.grant", "consent.revoke", "suppression.add",
                              "suppression.remove"]
    assert len(listed.policy.suppressions.entries()) == 2


def test_service_changes_need_a_reason(operator: AdminService) -> None:
    with pytest.raises(ActionRefused, match="needs a reason"):
        operator.add_suppression("a@x.example", "all", reason=" ")
    with pytest.raises(ActionRefused, match="needs a reason"):
        operator.remove_suppression("a@x.example", reason="")
    with pytest.raises(ActionRefused, match="needs a reason"):
        operator.grant_consent("a@x.example", "marketing", evidence="")
    assert operator.suppressions() == [] and operator.consents() == []
