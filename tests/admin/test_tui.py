"""Pilot tests: every screen, every action; the effect checked in the store and the audit log."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

from phigate.admin import AdminService
from phigate.admin_tui.app import AdminApp
from phigate.admin_tui.screens.message import MessageScreen
from phigate.admin_tui.screens.queue import PAGE_SIZE, QueueScreen
from phigate.admin_tui.widgets.dialogs import ConfirmDialog, ReasonDialog
from phigate.queue.models import MessageState, RecipientState
from phigate.runtime import Runtime

from .conftest import VIEWER

Enqueue = Callable[..., str]
SIZE = (80, 24)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only here: the screens see the database only through the service, which
    test_service runs on both backends; test_tui_postgres drives the key actions on PG."""
    return f"sqlite:///{tmp_path / 'queue.db'}"


def text_of(app: AdminApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def actions(runtime: Runtime) -> list[str]:
    return [e["action"] for e in runtime.audit.entries()][::-1]


async def test_dashboard_shows_queue_figures(operator: AdminService, enqueue: Enqueue) -> None:
    enqueue("a@x.example", "b@y.example", age=timedelta(hours=2))
    enqueue("c@x.example", state=MessageState.QUARANTINED, phi_verdict="phi")
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        queue = text_of(app, "#dash-queue")
        assert "queued 3  deferred 0" in queue
        assert "active 1  quarantined 1" in queue
        assert "oldest queued  2h" in queue
        assert "quarantine     1" in queue and "phi 1" in queue


async def test_queue_pages_forward_and_back(operator: AdminService, enqueue: Enqueue) -> None:
    for index in range(PAGE_SIZE + 5):
        enqueue(f"r{index}@x.example")
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, QueueScreen)
        table = screen.query_one("#queue-table", DataTable)
        assert table.row_count == PAGE_SIZE
        assert f"rows 1-{PAGE_SIZE} of {PAGE_SIZE + 5}" in text_of(app, "#queue-status")
        await pilot.press("n")
        assert table.row_count == 5
        assert f"rows {PAGE_SIZE + 1}-{PAGE_SIZE + 5}" in text_of(app, "#queue-status")
        await pilot.press("p")
        assert table.row_count == PAGE_SIZE
        assert screen.page is not None and screen.page.rows[0].recipient == "r0@x.example"


async def test_queue_filter_by_domain(operator: AdminService, enqueue: Enqueue) -> None:
    enqueue("a@one.example")
    wanted = enqueue("b@two.example")
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        app.screen.query_one("#f-domain", Input).value = "two.example"
        await pilot.click("#f-domain")
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, QueueScreen) and screen.page is not None
        assert [row.message_id for row in screen.page.rows] == [wanted]


@pytest.mark.parametrize(("key", "state", "action"), [
    ("h", MessageState.HELD, "queue.hold"),
    ("x", MessageState.DONE, "queue.delete"),
    ("b", MessageState.DONE, "queue.bounce"),
])
async def test_queue_actions_after_confirmation(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime, key: str,
        state: MessageState, action: str) -> None:
    message_id = enqueue("a@x.example")
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2", key)
        assert isinstance(app.screen, ConfirmDialog | ReasonDialog)
        if isinstance(app.screen, ReasonDialog):
            await pilot.press(*"review", "enter")
        else:
            await pilot.press("y")
        await pilot.pause()
    assert runtime.store.get_message(message_id).state == state
    entry = runtime.audit.entries(action=action)[0]
    assert (entry["message_id"], entry["actor"]) == (message_id, "otto")


async def test_cancelled_confirmation_changes_nothing(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    message_id = enqueue("a@x.example")
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2", "x")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("enter")  # the focused default button is "No"
        await pilot.pause()
        assert isinstance(app.screen, QueueScreen)
    assert runtime.store.get_message(message_id).state == MessageState.ACTIVE
    assert actions(runtime) == []


async def test_retry_and_release_from_the_queue(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    held = enqueue("a@x.example", state=MessageState.HELD)
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2", "l", "y", "r", "y")
        await pilot.pause()
    assert runtime.store.get_message(held).state == MessageState.ACTIVE
    assert actions(runtime) == ["queue.release", "queue.retry"]


async def test_marked_messages_are_acted_on_together(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    first, second, third = (enqueue(f"{n}@x.example") for n in "abc")
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2", "space", "space", "h")
        await pilot.press(*"batch", "enter")
        await pilot.pause()
    states = [runtime.store.get_message(i).state for i in (first, second, third)]
    assert states == [MessageState.HELD, MessageState.HELD, MessageState.ACTIVE]


async def test_viewer_is_refused_in_a_notification_and_audited(
        make_service: Callable[..., AdminService], enqueue: Enqueue,
        runtime: Runtime) -> None:
    message_id = enqueue("a@x.example")
    app = AdminApp(make_service(VIEWER))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("2", "h")
        await pilot.pause()
        assert isinstance(app.screen, QueueScreen)  # no dialog for a viewer
        [notice] = list(app._notifications)
        assert "vera may not run queue.hold" in notice.message
        assert notice.severity == "error"
    assert runtime.store.get_message(message_id).state == MessageState.ACTIVE
    entry = runtime.audit.entries()[0]
    assert (entry["action"], entry["actor"], entry["message_id"]) == (
        "action.denied", "vera", message_id)


async def test_message_screen_preview_is_redacted_and_reveal_is_audited(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    message_id = enqueue("a@x.example", phi_verdict="phi", phi_categories=["MRN"],
                         rule_hits=[{"rule": "phi", "action": "tag", "reason": "PHI found"}])
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2", "enter")
        await pilot.pause()
        assert isinstance(app.screen, MessageScreen)
        assert "phi: tag - PHI found" in text_of(app, "#decisions")
        preview = text_of(app, "#preview")
        assert "[MEDICAL_RECORD_NUMBER]" in preview and "48213977" not in preview
        await pilot.press("v")
        assert isinstance(app.screen, ReasonDialog)
        await pilot.press("enter")  # an empty reason is refused; the dialog stays
        assert isinstance(app.screen, ReasonDialog)
        await pilot.press(*"sender query", "enter")
        await pilot.pause()
        assert "48213977" in text_of(app, "#preview")
    entry = runtime.audit.entries(action="message.reveal")[0]
    assert (entry["message_id"], entry["detail"]) == (message_id, {"reason": "sender query"})


async def test_quarantine_release_needs_a_reason_and_reject_bounces(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    first = enqueue("a@x.example", state=MessageState.QUARANTINED, phi_verdict="phi",
                    hold_reason="PHI in marketing")
    second = enqueue("b@x.example", state=MessageState.QUARANTINED, age=timedelta(hours=1))
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        table = app.screen.query_one("#quarantine-table", DataTable)
        assert table.row_count == 2  # oldest first: second, then first
        await pilot.press("j", *"spam", "enter")
        await pilot.pause()
        assert table.row_count == 1
        await pilot.press("l")
        assert isinstance(app.screen, ReasonDialog)
        await pilot.press("escape")
        assert runtime.store.get_message(first).state == MessageState.QUARANTINED
        await pilot.press("l", *"approved by privacy officer", "enter")
        await pilot.pause()
        assert table.row_count == 0
    assert runtime.store.get_message(first).state == MessageState.ACTIVE
    assert [r.state for r in runtime.store.get_message(second).recipients] == [
        RecipientState.BOUNCED]
    release = runtime.audit.entries(action="queue.release")[0]
    assert release["detail"]["reason"] == "approved by privacy officer"
    assert runtime.audit.entries(action="quarantine.reject")[0]["message_id"] == second


async def test_audit_screen_lists_entries_and_shows_the_chain_state(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    message_id = enqueue("a@x.example")
    operator.hold([message_id])
    operator.release([message_id])
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen.query_one("#audit-table", DataTable).row_count == 2
        assert "hash chain OK: 2 entries verified" in text_of(app, "#chain")
        await pilot.press("slash", *"queue.hold", "enter")
        assert app.screen.query_one("#audit-table", DataTable).row_count == 1


def test_the_core_never_imports_textual() -> None:
    code = ("import sys, phigate.admin, phigate.cli.main, phigate.serve; "
            "phigate.cli.main.build_parser(); "
            "print(any(m.split('.')[0] == 'textual' for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
