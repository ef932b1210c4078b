"""The audit trail: newest first, filtered, with the hash chain's verification state."""

from __future__ import annotations

import json
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from phigate.admin_tui.screens.base import ListScreen
from phigate.admin_tui.widgets.detail import DetailDialog
from phigate.admin_tui.widgets.format import cells, clip
from phigate.audit.verify import ChainReport
from phigate.errors import PhigateError

COLUMNS = ("Id", "When (UTC)", "Who", "Action", "Message", "Detail")
LIMIT = 500


class AuditScreen(ListScreen):
    BINDINGS = [Binding("g", "reload", "Refresh"), Binding("slash", "filter", "Filter")]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        header, footer = self.chrome()
        yield header
        yield Static("verifying the chain…", id="chain", markup=False)
        yield Input(placeholder="filter: action, actor or message id (Enter)", id="audit-filter",
                    compact=True)
        table: DataTable[str] = DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield footer

    def on_mount(self) -> None:
        table = self.table_with_columns("#audit-table", COLUMNS)
        self.action_reload()
        table.focus()

    def action_filter(self) -> None:
        self.query_one("#audit-filter", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_reload()
        self.query_one("#audit-table", DataTable).focus()

    def action_reload(self) -> None:
        term = self.query_one("#audit-filter", Input).value.strip()
        query = _filter_for(term)
        entries = self.guarded(lambda: self.service.audit_entries(limit=LIMIT, **query))
        if entries is None:
            return
        table = self.query_one("#audit-table", DataTable)
        table.clear()
        self.entries = {str(e["id"]): e for e in entries}
        for e in entries:
            who = e["actor"] + (f"@{e['actor_ip']}" if e["actor_ip"] else "")
            detail = json.dumps(e["detail"], sort_keys=True) if e["detail"] else ""
            table.add_row(*cells(str(e["id"]), e["at"][:19].replace("T", " "), clip(who, 20),
                          e["action"], e["message_id"] or "", clip(detail, 60)), key=str(e["id"]))
        self._verify()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        entry = self.entries.get(str(event.row_key.value))
        if entry is not None:
            self.app.push_screen(DetailDialog(f"Audit entry {entry['id']}", detail_lines(entry)))

    @work(thread=True, exclusive=True, group="audit-verify")
    def _verify(self) -> None:
        try:
            report = self.service.verify_audit()
        except PhigateError as error:
            self.app.call_from_thread(self.notify, str(error), severity="error", markup=False)
            return
        self.app.call_from_thread(self.show_chain, report)

    def show_chain(self, report: ChainReport) -> None:
        chain = self.query_one("#chain", Static)
        if report.broken is None:
            chain.update(f"hash chain OK: {report.checked} entries verified")
            chain.set_classes("chain-ok")
        else:
            chain.update(f"hash chain BROKEN at entry {report.broken.entry_id}: "
                         f"{report.broken.problem}")
            chain.set_classes("chain-broken")


def detail_lines(entry: dict[str, Any]) -> list[tuple[str, str]]:
    """Every field of an entry, whole: the detail JSON one key a line."""
    lines = [("id", str(entry["id"])), ("when (UTC)", str(entry["at"])),
             ("who", str(entry["actor"])), ("from", str(entry["actor_ip"] or "-")),
             ("action", str(entry["action"])), ("message", str(entry["message_id"] or "-"))]
    for key, value in sorted((entry.get("detail") or {}).items()):
        lines.append((f"  {key}", json.dumps(value) if not isinstance(value, str) else value))
    return lines


def _filter_for(term: str) -> dict[str, Any]:
    """``queue.hold`` is an action, a message id is upper-case hex, anything else an actor."""
    if not term:
        return {}
    if "." in term:
        return {"action": term}
    if len(term) >= 16 and term.isalnum() and term == term.upper():
        return {"message_id": term}
    return {"actor": term}
