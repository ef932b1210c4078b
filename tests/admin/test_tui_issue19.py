"""Pilot tests of the 80-column console: keys in the footer, the audit detail view, auto-refresh
that keeps the cursor, and the quarantine grouped by reason with the fixing command."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from textual.widgets import DataTable, Footer, Static
from textual.widgets._footer import FooterKey

from phigate.admin import AdminService
from phigate.admin_tui.app import AdminApp
from phigate.admin_tui.screens.campaigns import CampaignsScreen
from phigate.admin_tui.screens.queue import QueueScreen
from phigate.admin_tui.widgets.detail import DetailDialog
from phigate.audit.log import Actor
from phigate.queue.models import MessageState

Enqueue = Callable[..., str]
SIZE = (80, 24)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'queue.db'}"


async def test_footer_at_80_columns_shows_every_screen_key_and_help(
        operator: AdminService, enqueue: Enqueue) -> None:
    enqueue("a@x.example")
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await pilot.pause()
        footer = app.screen.query_one(Footer)
        visible = {item.description for item in footer.query(FooterKey)
                   if item.region.right <= SIZE[0] and item.region.width}
        regions = [(item.description, item.region) for item in footer.query(FooterKey)]
        assert {"Next", "Retry", "Hold", "Release", "Delete", "Bounce", "All keys",
                "Quit"} <= visible, regions


async def test_enter_on_an_audit_entry_shows_it_whole(
        operator: AdminService, runtime: object) -> None:
    long_reason = "checked with the patient by phone; " * 4
    operator.audit.record(Actor("otto", "203.0.113.7"), "queue.release",
                          message_id="MSG0123456789ABCDEF0123", detail={"reason": long_reason})
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailDialog)
        shown = str(app.screen.query_one("#detail-text", Static).render())
        assert "MSG0123456789ABCDEF0123" in shown and long_reason.strip() in shown
        assert "203.0.113.7" in shown
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailDialog)


async def test_queue_refreshes_itself_and_keeps_the_cursor(
        operator: AdminService, enqueue: Enqueue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(QueueScreen, "REFRESH_SECONDS", 0.2)
    for index in range(3):
        enqueue(f"r{index}@x.example", age=timedelta(minutes=10 - index))
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await pilot.pause()
        table = app.screen.query_one("#queue-table", DataTable)
        await pilot.press("down")
        chosen = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        enqueue("new@x.example")
        await pilot.pause(0.6)
        assert table.row_count == 4  # the new message appeared without a key press
        assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key == chosen


async def test_campaigns_refresh_and_leave_cancelled_recipients_out(
        operator: AdminService, enqueue: Enqueue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CampaignsScreen, "REFRESH_SECONDS", 0.2)
    only = enqueue("gone@x.example", message_class="marketing", campaign_id="solo",
                   state=MessageState.AWAITING_APPROVAL)
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await pilot.pause()
        table = app.screen.query_one("#campaign-table", DataTable)
        assert [str(k.value) for k in table.rows] == ["solo"]
        operator.delete([only])  # its only recipient is cancelled
        await pilot.pause(0.6)
        assert [str(k.value) for k in table.rows] == []


async def test_quarantine_groups_held_mail_by_reason_with_the_fix(
        operator: AdminService, enqueue: Enqueue) -> None:
    enqueue("a@x.example", state=MessageState.QUARANTINED, phi_verdict="phi",
            hold_reason="PHI to 1 recipient(s) outside the allowed domains without email_phi "
                        "consent")
    enqueue("b@x.example", state=MessageState.QUARANTINED, phi_verdict="phi",
            hold_reason="PHI to 1 recipient(s) outside the allowed domains without email_phi "
                        "consent")
    enqueue("c@x.example", state=MessageState.QUARANTINED, phi_verdict="phi",
            message_class="marketing",
            hold_reason="PHI found in marketing mail (diagnosis) without a HIPAA marketing "
                        "authorization for every recipient")
    app = AdminApp(operator)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        groups = str(app.screen.query_one("#quarantine-groups", Static).render())
        first, second = groups.splitlines()
        assert first.startswith("2 no email_phi consent: phigate consent grant ADDRESS "
                                "--purpose email_phi")
        assert second.startswith("1 PHI in marketing:")
