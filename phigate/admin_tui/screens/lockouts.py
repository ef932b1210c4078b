"""AUTH lockouts now, as every serve process and node keeps them (in the database): the user
names refused from a client address, and the names slowed from every address (the tarpit).
``u`` unlocks the selected row after a confirmation, through the admin service's
``unlock_user``, the same audited call as ``phigate user unlock NAME [--ip ADDRESS]``."""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from phigate.admin_tui.screens.policy_screen import PolicyScreen
from phigate.admin_tui.widgets.dialogs import ConfirmDialog
from phigate.admin_tui.widgets.format import Column, cells, clip, clip_middle, seconds

#: At 80 columns the detail and a 30-character address fit, and a 10-character user name;
#: longer ones are cut with an ellipsis (the confirmation shows them whole).
COLUMNS = (Column("User", 24, 10, priority=2), Column("Client", 39, 15, priority=1),
           Column("State", 10, 10), Column("Detail", 20, 12, priority=0))


@dataclass(frozen=True)
class LockoutRow:
    """One row: a (name, address) lockout, or a name's tarpit (``client_ip`` None)."""

    user: str
    client_ip: str | None
    state: str
    detail: str

    @property
    def key(self) -> str:
        return f"{self.user}\0{self.client_ip or ''}"

    @property
    def what(self) -> str:
        where = f"from {self.client_ip}" if self.client_ip else "from every address"
        return f"user {self.user} {where}"


class LockoutsScreen(PolicyScreen):
    # Lockouts run out by themselves: reload often enough that an expired one goes.
    REFRESH_SECONDS = 5.0
    BINDINGS = [
        Binding("u", "unlock", "Unlock"),
        Binding("g", "reload", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[LockoutRow] = []

    def compose(self) -> ComposeResult:
        header, footer = self.chrome()
        yield header
        table: DataTable[str] = DataTable(id="lockout-table", cursor_type="row",
                                          zebra_stripes=True)
        yield table
        yield Static("", id="lockout-status", markup=False)
        yield footer

    def on_mount(self) -> None:
        self.border_title = "Lockouts"
        self.action_reload()
        self.query_one("#lockout-table", DataTable).focus()
        self.start_auto_refresh()

    def on_resize(self, event: events.Resize) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        current = self.guarded(self.service.lockouts)
        if current is None:
            return
        lockouts, tarpits = current
        now = self.service.clock()
        rows = [LockoutRow(lock.user, lock.client_ip, "locked out",
                           f"{seconds((lock.locked_until - now).total_seconds())} left, "
                           f"#{lock.lockouts}") for lock in lockouts]
        rows += [LockoutRow(tarpit.user, None, "slowed",
                            f"{tarpit.failures} fails, last {tarpit.last_failure_at:%H:%M}")
                 for tarpit in tarpits]
        self.rows = rows
        table = self.query_one("#lockout-table", DataTable)
        cursor = table.cursor_row
        width = self.fit_table(table, COLUMNS)
        table.clear()
        for row in rows:
            table.add_row(*cells(clip(row.user, width[0]),
                                 clip_middle(row.client_ip or "(every address)", width[1]),
                                 row.state, clip(row.detail, width[3])), key=row.key)
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1))
        self.query_one("#lockout-status", Static).update(
            f"{len(lockouts)} locked out, {len(tarpits)} slowed  -  u: unlock"
            if rows else "no lockouts")

    def selected(self) -> LockoutRow | None:
        table = self.query_one("#lockout-table", DataTable)
        if not self.rows or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def action_unlock(self) -> None:
        row = self.selected()
        if row is None:
            self.notify("no lockout selected", severity="warning", markup=False)
            return
        if not self.may("user.unlock"):
            return
        who = self.service.identity
        scope = ("" if row.client_ip else
                 " Its lockouts from every address and its tarpit are cleared.")
        question = (f"Unlock {row.what}?{scope} Recorded as {who.user} from "
                    f"{who.ip or 'local'}.")
        self.app.push_screen(
            ConfirmDialog(question, yes="Unlock"),
            lambda yes: self.perform(lambda: self._unlock(row)) if yes else None)

    def _unlock(self, row: LockoutRow) -> str:
        cleared = self.service.unlock_user(row.user, row.client_ip)
        return f"unlocked {row.what}: {cleared} lockout(s) cleared"
