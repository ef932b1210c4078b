"""What the campaign and suppression/consent screens share: refuse a viewer before any
dialog opens, then run the confirmed action and say what it did."""

from __future__ import annotations

from collections.abc import Callable

from phigate.admin_tui.screens.base import ListScreen
from phigate.errors import PhigateError


class PolicyScreen(ListScreen):
    def may(self, action: str) -> bool:
        """True for an operator; a viewer gets a notification and the refusal is audited."""
        try:
            self.service.require_operator(action)
        except PhigateError as error:
            self.notify(str(error), title="Refused", severity="error", markup=False)
            return False
        return True

    def perform(self, act: Callable[[], str]) -> None:
        """Run a confirmed action (a PhigateError becomes a notice), then reload the lists."""
        done = self.guarded(act)
        if done is not None:
            self.notify(done, title="Done", markup=False)
        self.action_reload()
