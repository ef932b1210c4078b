"""The phigate admin console. It is handed an :class:`AdminService` and knows nothing else."""

from __future__ import annotations

from textual.app import App
from textual.binding import Binding

from phigate.admin import AdminService
from phigate.admin_tui.screens.audit import AuditScreen
from phigate.admin_tui.screens.campaigns import CampaignsScreen
from phigate.admin_tui.screens.dashboard import DashboardScreen
from phigate.admin_tui.screens.quarantine import QuarantineScreen
from phigate.admin_tui.screens.queue import QueueScreen
from phigate.admin_tui.screens.suppressions import SuppressionsScreen


class AdminApp(App[None]):
    CSS_PATH = "phigate.tcss"
    TITLE = "phigate"
    MODES = {
        "dashboard": DashboardScreen,
        "queue": QueueScreen,
        "quarantine": QuarantineScreen,
        "audit": AuditScreen,
        "campaigns": CampaignsScreen,
        "suppressions": SuppressionsScreen,
    }
    DEFAULT_MODE = "dashboard"
    BINDINGS = [
        Binding("f1,1", "switch_mode('dashboard')", "Dashboard"),
        Binding("f2,2", "switch_mode('queue')", "Queue"),
        Binding("f3,3", "switch_mode('quarantine')", "Quarantine"),
        Binding("f4,4", "switch_mode('audit')", "Audit"),
        Binding("f5,5", "switch_mode('campaigns')", "Campaigns"),
        Binding("f6,6", "switch_mode('suppressions')", "Suppressions"),
        # Every key of the screen and the app; the footer of an 80-column terminal shows
        # only the first few.
        Binding("question_mark", "toggle_keys", "Keys"),
        Binding("ctrl+q,q", "quit", "Quit"),
    ]

    def __init__(self, service: AdminService) -> None:
        super().__init__()
        self.service = service
        identity = service.identity
        where = f" from {identity.ip}" if identity.ip else ""
        self.sub_title = f"{identity.user}{where} ({service.role})"

    def action_toggle_keys(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()
