"""The audit trail: newest first, filtered, with the hash chain's verification state."""

from __future__ import annotations

import json
from typing import Any

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from phigate.admin_tui.screens.base import ListScreen
from phigate.admin_tui.widgets.detail import DetailDialog
from phigate.admin_tui.widgets.format import Column, cells, clip, clip_middle
from phigate.audit.verify import ChainReport
from phigate.errors import PhigateError

#: At 80 columns: short times, ids cut in the middle, who and detail with an ellipsis; Enter
#: shows the entry whole.
COLUMNS = (Column("Id", 6, 3, priority=4), Column("When (UTC)", 19, 11, priority=1),
           Column("Who", 24, 10, priority=3), Column("Action", 22, 14, priority=2),
           Column("Message", 21, 13, priority=0), Column("Detail", 200, 12, priority=5))
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
        self.action_reload()
        self.query_one("#audit-table", DataTable).focus()

    def on_resize(self, event: events.Resize) -> None:
        if self.is_mounted:  # the columns are fitted to the new width
            self.action_reload()

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
        width = self.fit_table(table, COLUMNS)
        table.clear()
        self.entries = {str(e["id"]): e for e in entries}
        for e in entries:
            who = e["actor"] + (f"@{e['actor_ip']}" if e["actor_ip"] else "")
            detail = json.dumps(e["detail"], sort_keys=True) if e["detail"] else ""
            when = e["at"][:19].replace("T", " ")
            table.add_row(*cells(clip(str(e["id"]), width[0]),
                                 when if width[1] >= 19 else when[5:16], clip(who, width[2]),
                                 clip(e["action"], width[3]),
                                 clip_middle(e["message_id"] or "", width[4]),
                                 clip(detail, width[5])), key=str(e["id"]))
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
