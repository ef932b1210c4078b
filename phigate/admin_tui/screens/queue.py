"""The queue: filters, a keyset-paged table, and the actions on the selected messages."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.widgets import DataTable, Input, Select, Static

from phigate.admin import STATE_CHOICES, QueueFilter, QueuePage
from phigate.admin.durations import parse_duration
from phigate.admin_tui.operations import request_action
from phigate.admin_tui.screens.base import AdminScreen
from phigate.admin_tui.widgets.format import Column, age, cells, clip, clip_middle
from phigate.errors import PhigateError

PAGE_SIZE = 200
#: At 80 columns ids, addresses and replies are cut with an ellipsis; Enter shows them whole.
COLUMNS = (Column("Message", 22, 14, priority=0), Column("Age", 4, 4), Column("State", 11, 11),
           Column("Recipient", 30, 12, priority=1), Column("Sender", 26, 10, priority=2),
           Column("Att", 3, 3), Column("Last reply", 60, 10, priority=3))
#: Below this width the filter bar takes two lines instead of being cut.
WIDE_FILTERS = 110


class QueueScreen(AdminScreen):
    REFRESH_SECONDS = 5.0
    BINDINGS = [
        Binding("n,pagedown", "next_page", "Next"),
        Binding("p,pageup", "prev_page", "Prev", show=False),  # listed under `?`
        Binding("space", "mark", "Mark"),
        Binding("r", "act('retry')", "Retry"),
        Binding("h", "act('hold')", "Hold"),
        Binding("l", "act('release')", "Release"),
        Binding("x", "act('delete')", "Delete"),
        Binding("b", "act('bounce')", "Bounce"),
        Binding("slash", "focus_filters", "Filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filters = QueueFilter()
        self.page: QueuePage | None = None
        self.marked: set[str] = set()
        #: Which page we are on (for the "rows x-y" status line).
        self._page_index = 0
        #: Total rows for the current filters; counted when they change, not on every page.
        self._total: int | None = None

    def compose(self) -> ComposeResult:
        header, footer = self.chrome()
        yield header
        with Grid(id="filters"):
            yield Select([(s, s) for s in STATE_CHOICES], value="pending", allow_blank=False,
                         id="f-state", compact=True)
            yield Input(placeholder="domain", id="f-domain", compact=True)
            yield Input(placeholder="sender", id="f-sender", compact=True)
            yield Input(placeholder="class", id="f-class", compact=True)
            yield Input(placeholder="older than (1h)", id="f-age", compact=True)
        table: DataTable[str] = DataTable(id="queue-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="queue-status", markup=False)
        yield footer

    def on_mount(self) -> None:
        table = self.query_one("#queue-table", DataTable)
        self._fit_filters(self.size.width)
        self.load()
        table.focus()
        self.start_auto_refresh()

    def on_resize(self, event: events.Resize) -> None:
        self._fit_filters(event.size.width)
        if self.page is not None:
            self.refresh_page()

    def _fit_filters(self, width: int) -> None:
        self.query_one("#filters").set_class(width < WIDE_FILTERS, "narrow")

    # -- loading ------------------------------------------------------------------------------

    def load(self, *, after: int | None = None, before: int | None = None,
             recount: bool = True) -> None:
        page = self.guarded(lambda: self.service.page(self.filters, after=after, before=before,
                                                      limit=PAGE_SIZE))
        if page is None:
            return
        self.page = page
        now = self.service.clock()
        table = self.query_one("#queue-table", DataTable)
        width = self.fit_table(table, COLUMNS)
        table.clear()
        for row in page.rows:
            state = row.recipient_state if str(row.message_state) == "active" \
                else row.message_state
            mark = "*" if row.message_id in self.marked else " "
            last = f"{row.last_code or ''} {row.last_text or ''}".strip()
            table.add_row(*cells(mark + clip_middle(row.message_id, width[0] - 1),
                                 age(row.created_at, now), str(state),
                                 clip(row.recipient, width[3]),
                                 clip(row.sender or "<>", width[4]), str(row.attempts),
                                 clip(last, width[6])),
                          key=str(row.recipient_id))
        if recount or self._total is None:
            self._total = self.guarded(lambda: self.service.count(self.filters))
        self._update_status()

    def _update_status(self) -> None:
        total = self._total
        rows = len(self.page.rows) if self.page else 0
        first = self._page_index * PAGE_SIZE + 1 if rows else 0
        marked = f"  {len(self.marked)} marked" if self.marked else ""
        self.query_one("#queue-status", Static).update(
            f"rows {first}-{first + rows - 1 if rows else 0} of {total}  "
            f"[{self.filters.state}]{marked}")

    def reload_rows(self) -> None:
        self.refresh_page()

    def refresh_page(self) -> None:
        """Reload the current page after an action (the rows may have moved on)."""
        if self.page and self.page.prev_before is not None and self.page.rows:
            self.load(after=self.page.rows[0].recipient_id - 1)
        else:
            self.load()

    # -- filters ------------------------------------------------------------------------------

    def _read_filters(self) -> QueueFilter | None:
        def text(widget_id: str) -> str | None:
            return self.query_one(widget_id, Input).value.strip() or None

        try:
            age_text = text("#f-age")
            return QueueFilter(
                state=str(self.query_one("#f-state", Select).value),
                domain=text("#f-domain"), sender=text("#f-sender"),
                message_class=text("#f-class"),
                older_than=parse_duration(age_text) if age_text else None)
        except PhigateError as error:
            self.notify(str(error), severity="warning", markup=False)
            return None

    def _apply_filters(self) -> None:
        filters = self._read_filters()
        if filters is not None:
            self.filters = filters
            self._page_index = 0
            self.load()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._apply_filters()
        self.query_one("#queue-table", DataTable).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if self.is_mounted and self.page is not None:
            self._apply_filters()

    def action_focus_filters(self) -> None:
        self.query_one("#f-domain", Input).focus()

    # -- paging and selection -----------------------------------------------------------------

    def action_next_page(self) -> None:
        if self.page is None or self.page.next_after is None:
            self.notify("last page", severity="information", markup=False)
            return
        self._page_index += 1
        self.load(after=self.page.next_after, recount=False)

    def action_prev_page(self) -> None:
        if self.page is None or self.page.prev_before is None:
            self.notify("first page", severity="information", markup=False)
            return
        self._page_index = max(self._page_index - 1, 0)
        self.load(before=self.page.prev_before, recount=False)

    def selected_message(self) -> str | None:
        table = self.query_one("#queue-table", DataTable)
        if not self.page or not self.page.rows or table.cursor_row >= len(self.page.rows):
            return None
        return self.page.rows[table.cursor_row].message_id

    def action_mark(self) -> None:
        message_id = self.selected_message()
        if message_id is None:
            return
        self.marked ^= {message_id}
        table = self.query_one("#queue-table", DataTable)
        row = table.cursor_row
        self.refresh_page()
        table.move_cursor(row=min(row + 1, table.row_count - 1))

    def action_open(self) -> None:
        from phigate.admin_tui.screens.message import MessageScreen

        message_id = self.selected_message()
        if message_id is not None:
            self.app.push_screen(MessageScreen(message_id), lambda _: self.refresh_page())

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_act(self, kind: str) -> None:
        selected = self.selected_message()
        ids = sorted(self.marked) or ([selected] if selected else [])

        def done() -> None:
            self.marked.clear()
            self.refresh_page()

        request_action(self, self.service, kind, ids, done=done)
