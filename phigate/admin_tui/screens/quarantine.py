"""Messages policy held for review, with the reasons; release (with a reason) or reject."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from phigate.admin import QuarantineItem
from phigate.admin_tui.operations import request_action
from phigate.admin_tui.quarantine_groups import group_of, summary_lines
from phigate.admin_tui.screens.base import ListScreen
from phigate.admin_tui.widgets.format import age, cells, clip

COLUMNS = ("Message", "Age", "Class", "Verdict", "Rcpts", "Sender", "Held for")


class QuarantineScreen(ListScreen):
    BINDINGS = [
        Binding("l", "act('release-quarantine')", "Release"),
        Binding("j", "act('reject')", "Reject"),
        Binding("g", "reload", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.items: list[QuarantineItem] = []

    def compose(self) -> ComposeResult:
        header, footer = self.chrome()
        yield header
        yield Static("", id="quarantine-groups", markup=False)
        table: DataTable[str] = DataTable(id="quarantine-table", cursor_type="row",
                                          zebra_stripes=True)
        yield table
        yield Static("", id="quarantine-status", markup=False)
        yield footer

    def on_mount(self) -> None:
        table = self.table_with_columns("#quarantine-table", COLUMNS)
        self.action_reload()
        table.focus()

    def action_reload(self) -> None:
        items = self.guarded(lambda: self.service.quarantine())
        if items is None:
            return
        self.items = items
        now = self.service.clock()
        table = self.query_one("#quarantine-table", DataTable)
        table.clear()
        for item in items:
            verdict = item.phi_verdict + (f" {','.join(item.phi_categories)}"
                                          if item.phi_categories else "")
            table.add_row(*cells(item.message_id, age(item.created_at, now), item.message_class,
                          clip(verdict, 24), str(item.recipients), clip(item.sender, 24),
                          group_of(item.reason or "")[0]), key=item.message_id)
        self.query_one("#quarantine-groups", Static).update(
            "\n".join(summary_lines(item.reason or "" for item in items)) or "nothing held")
        self.query_one("#quarantine-status", Static).update(
            f"{len(items)} message(s) in quarantine  -  Enter: open, l: release, j: reject")

    def selected(self) -> str | None:
        table = self.query_one("#quarantine-table", DataTable)
        if not self.items or table.cursor_row >= len(self.items):
            return None
        return self.items[table.cursor_row].message_id

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        from phigate.admin_tui.screens.message import MessageScreen

        message_id = self.selected()
        if message_id:
            self.app.push_screen(MessageScreen(message_id), lambda _: self.action_reload())

    def action_act(self, kind: str) -> None:
        message_id = self.selected()
        request_action(self, self.service, kind, [message_id] if message_id else [],
                       done=self.action_reload)
