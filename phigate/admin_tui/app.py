"""The phigate admin console. It is handed an :class:`AdminService` and knows nothing else."""

from __future__ import annotations

from textual.app import App
from textual.binding import Binding

from phigate.admin import AdminService
from phigate.admin_tui.screens.audit import AuditScreen
from phigate.admin_tui.screens.campaigns import CampaignsScreen
from phigate.admin_tui.screens.dashboard import DashboardScreen
from phigate.admin_tui.screens.lockouts import LockoutsScreen
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
        "lockouts": LockoutsScreen,
    }
    DEFAULT_MODE = "dashboard"
    BINDINGS = [
        Binding("f1,1", "switch_mode('dashboard')", "Dashboard", show=False),
        Binding("f2,2", "switch_mode('queue')", "Queue", show=False),
        Binding("f3,3", "switch_mode('quarantine')", "Quarantine", show=False),
        Binding("f4,4", "switch_mode('audit')", "Audit", show=False),
        Binding("f5,5", "switch_mode('campaigns')", "Campaigns", show=False),
        Binding("f6,6", "switch_mode('suppressions')", "Suppressions", show=False),
        Binding("f7,7", "switch_mode('lockouts')", "Lockouts", show=False),
        # The screens' own keys fill an 80-column footer; the screen switches (F1-F7, or
        # 1-7) are listed with every other key under `?`, which the footer always shows.
        Binding("question_mark", "toggle_keys", "All keys"),
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
