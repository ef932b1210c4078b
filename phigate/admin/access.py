"""The gate every admin operation passes: the role check, and the audit of a refusal."""

from __future__ import annotations

from collections.abc import Sequence

from phigate.admin.roles import AccessDenied, Identity, Role, role_of
from phigate.audit.log import AuditLog
from phigate.config import AdminSettings

DENIED_ACTION = "action.denied"
_NEEDED_LIST = {Role.VIEWER: "[admin] viewers or operators", Role.OPERATOR: "[admin] operators"}


class Gate:
    def __init__(self, audit: AuditLog, settings: AdminSettings, identity: Identity,
                 *, service_user: str | None = None) -> None:
        self.audit = audit
        self.identity = identity
        self.role = role_of(identity, settings)
        self._service_user = service_user

    def require(self, needed: Role, action: str, message_ids: Sequence[str] = (),
                *, allow_service_user: bool = False) -> None:
        """Return if the identity may do ``action``; else audit the refusal and raise."""
        if self.role >= needed:
            return
        if allow_service_user and self._service_user and self.identity.user == self._service_user:
            return
        detail = {"action": action, "role": str(self.role)}
        targets: list[str | None] = [*message_ids] or [None]
        for message_id in targets:
            self.audit.record(self.identity.actor, DENIED_ACTION, message_id=message_id,
                              detail=detail)
        raise AccessDenied(
            f"user {self.identity.user} may not run {action}: "
            f"not in {_NEEDED_LIST[needed]} (attempt recorded)"
        )
