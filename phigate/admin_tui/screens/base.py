"""What every admin screen shares: the service, and errors shown as notifications."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from textual.screen import Screen
from textual.widgets import Footer, Header

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
