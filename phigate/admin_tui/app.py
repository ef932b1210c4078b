"""The phigate admin console. It is handed an :class:`AdminService` and knows nothing else."""

from __future__ import annotations

from textual.app import App
from textual.binding import Binding

from phigate.admin import AdminService
from phigate.admin_tui.screens.audit import AuditScreen
from phigate.admin_tui.screens.dashboard import DashboardScreen
from phigate.admin_tui.screens.quarantine import QuarantineScreen
from phigate.admin_tui.screens.queue import QueueScreen


class AdminApp(App[None]):
    CSS_PATH = "phigate.tcss"
    TITLE = "phigate"
    MODES = {
        "dashboard": DashboardScreen,
        "queue": QueueScreen,
        "quarantine": QuarantineScreen,
        "audit": AuditScreen,
    }
    DEFAULT_MODE = "dashboard"
    BINDINGS = [
        Binding("f1,1", "switch_mode('dashboard')", "Dashboard"),
        Binding("f2,2", "switch_mode('queue')", "Queue"),
        Binding("f3,3", "switch_mode('quarantine')", "Quarantine"),
        Binding("f4,4", "switch_mode('audit')", "Audit"),
        Binding("ctrl+q,q", "quit", "Quit"),
    ]

    def __init__(self, service: AdminService) -> None:
        super().__init__()
        self.service = service
        identity = service.identity
        where = f" from {identity.ip}" if identity.ip else ""
        self.sub_title = f"{identity.user}{where} ({service.role})"
