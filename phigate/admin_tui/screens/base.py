"""What every admin screen shares: the service, and errors shown as notifications."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

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
        return Header(), Footer()

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

    def action_reload(self) -> None:
        raise NotImplementedError
