"""The admin service layer shared by the CLI and the TUI (roles, audit, listing, actions).

Nothing here imports Textual; ``phigate.admin_tui`` is the only UI and it goes through
:class:`AdminService`.
"""

from phigate.admin.actions import ActionRefused
from phigate.admin.dashboard import Dashboard, store_snapshot
from phigate.admin.details import ActionOutcome, MessageDetail, QuarantineItem
from phigate.admin.listing import STATE_CHOICES, QueueFilter, QueuePage, QueueRow
from phigate.admin.roles import AccessDenied, Identity, Role
from phigate.admin.service import AdminService

__all__ = [
    "STATE_CHOICES",
    "AccessDenied",
    "ActionOutcome",
    "ActionRefused",
    "AdminService",
    "Dashboard",
    "Identity",
    "MessageDetail",
    "QuarantineItem",
    "QueueFilter",
    "QueuePage",
    "QueueRow",
    "Role",
    "store_snapshot",
]
