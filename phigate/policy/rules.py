"""The built-in rules. Each is small, named, and explains itself in its reason."""

from __future__ import annotations

from dataclasses import dataclass

from phigate.config import ScannerSettings
from phigate.policy.engine import Action, PolicyContext, Rule, Verdict

_ACTIONS = {"tag": Action.TAG, "quarantine": Action.QUARANTINE, "reject": Action.REJECT}


@dataclass(frozen=True)
class PhiByClassRule:
    """Turn the scanner's PHI verdict into the action configured for the message class."""

    settings: ScannerSettings
    name: str = "phi-by-class"
    description: str = "PHI found: tag, quarantine or reject depending on the message class"
    stages: frozenset[str] = frozenset({"data"})

    def check(self, ctx: PolicyContext) -> Verdict | None:
        if ctx.scan is None or ctx.scan.verdict != "phi":
            return None
        configured = getattr(self.settings, f"action_{ctx.message_class}", "quarantine")
        action = _ACTIONS.get(configured, Action.QUARANTINE)
        categories = ", ".join(ctx.scan.categories) or "unscannable content"
        reason = f"PHI found in {ctx.message_class} mail ({categories})"
        if action == Action.REJECT:
            return Verdict(action, reason, f"550 5.7.1 Message refused: {reason}")
        return Verdict(action, reason)


def default_rules(scanner: ScannerSettings) -> list[Rule]:
    return [PhiByClassRule(scanner)]
