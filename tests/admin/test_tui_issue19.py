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


async def test_queue_at_80_columns_wraps_filters_and_ellipsises_with_enter_showing_all(
        operator: AdminService, enqueue: Enqueue) -> None:
    from phigate.admin_tui.screens.message import MessageScreen

    sender = "newsletter-team@practice-marketing.example"
    recipient = "a.very.long.recipient.name@patients-mail.example"
    message_id = enqueue(recipient, sender=sender)
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await pilot.pause()
        for widget_id in ("#f-state", "#f-domain", "#f-sender", "#f-class", "#f-age"):
            region = app.screen.query_one(widget_id).region
            assert region.width and region.right <= SIZE[0], (widget_id, region)
        assert app.screen.query_one("#f-age").region.y > app.screen.query_one(
            "#f-domain").region.y  # a second line, not cut
        table = app.screen.query_one("#queue-table", DataTable)
        shown = [str(cell) for cell in table.get_row_at(0)]
        assert table.virtual_size.width <= SIZE[0]  # every column on screen
        assert shown[3].endswith("…") and recipient.startswith(shown[3][:-1])
        assert shown[4].endswith("…") and sender.startswith(shown[4][:-1])
        assert "…" in shown[0] and message_id.endswith(shown[0].split("…")[1])
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, MessageScreen)
        envelope = str(app.screen.query_one("#envelope", Static).render())
        attempts = str(app.screen.query_one("#attempts", Static).render())
        assert sender in envelope and recipient in attempts
        assert app.screen.query_one("#envelope").border_title == f"Message {message_id}"


async def test_audit_at_80_columns_shows_the_detail_column(
        operator: AdminService) -> None:
    operator.audit.record(Actor("otto", "203.0.113.7"), "queue.hold",
                          message_id="MSG0123456789ABCDEF0123",
                          detail={"reason": "waiting for the patient's consent form"})
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one("#audit-table", DataTable)
        assert table.virtual_size.width <= SIZE[0]
        assert [str(c.label) for c in table.columns.values()][-1] == "Detail"
        row = [str(cell) for cell in table.get_row_at(0)]
        assert row[-1].startswith('{"reason": ') and row[-1].endswith("…")
        assert row[4].startswith("MSG") and row[4].endswith("EF0123")
