"""What every admin screen shares: the service, and errors shown as notifications."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input

from phigate.admin_tui.widgets.format import Column, fit_columns
from phigate.errors import PhigateError

if TYPE_CHECKING:
    from phigate.admin import AdminService
    from phigate.admin_tui.app import AdminApp

T = TypeVar("T")


class AdminScreen(Screen[None]):
    @property
    def admin_app(self) -> AdminApp:
        from phigate.admin_tui.app import AdminApp

        assert isinstance(self.app, AdminApp)  # noqa: S101 - screens only run in AdminApp
        return self.app

    @property
    def service(self) -> AdminService:
        return self.admin_app.service

    def guarded(self, load: Callable[[], T]) -> T | None:
        """Run a service call; a refusal or a bad id becomes a notification, not a crash."""
        try:
            return load()
        except PhigateError as error:
            self.notify(str(error), severity="error", markup=False)
            return None

    def chrome(self) -> tuple[Header, Footer]:
        # Compact, without the palette entry: at 80 columns every screen key and `?` (all
        # keys) still fit; F1-F6 are listed under `?`.
        return Header(), Footer(compact=True, show_command_palette=False)

    #: Seconds between automatic reloads while the screen is shown (None: only on demand).
    REFRESH_SECONDS: float | None = None

    def start_auto_refresh(self) -> None:
        if self.REFRESH_SECONDS:
            self.set_interval(self.REFRESH_SECONDS, self._refresh_tick)

    def _refresh_tick(self) -> None:
        # Not while the admin types a filter or a dialog is open over this screen.
        if not self.is_current or isinstance(self.focused, Input):
            return
        self.auto_reload()

    def auto_reload(self) -> None:
        """Reload keeping the cursor on the same row (by key) where it still exists."""
        table = self.query(DataTable).first()
        key = None
        if table.row_count:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        self.reload_rows()
        if key is not None and key in table.rows:
            table.move_cursor(row=table.get_row_index(key))

    def reload_rows(self) -> None:
        """What an automatic reload runs (list screens: their reload action)."""

    def fit_table(self, table: DataTable[Any], columns: Sequence[Column]) -> list[int]:
        """Give ``table`` the column widths that fit this screen (rebuilt when the width
        changed; the caller reloads the rows) and return them for clipping the cells."""
        widths = fit_columns(columns, self.size.width or 80)
        fitted: dict[str, list[int]] = self.__dict__.setdefault("_fitted_widths", {})
        if fitted.get(str(table.id)) != widths:
            table.clear(columns=True)
            for column, width in zip(columns, widths, strict=True):
                table.add_column(column.title, key=column.title, width=width)
            fitted[str(table.id)] = widths
        return widths

    def table_with_columns(self, selector: str, columns: Sequence[str]) -> DataTable[Any]:
        """The DataTable at ``selector``, given its columns (keyed by their titles)."""
        table: DataTable[Any] = self.query_one(selector, DataTable)
        for column in columns:
            table.add_column(column, key=column)
        return table


class ListScreen(AdminScreen):
    """A screen of lists that reloads whenever it is shown again (after a dialog or
    another screen), so an action taken elsewhere is visible at once."""

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.action_reload()

    def reload_rows(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        raise NotImplementedError
