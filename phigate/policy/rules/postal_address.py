"""Marketing mail waits for the practice's postal address (CAN-SPAM requires it in every
commercial message; delivery adds it to the visible footer)."""

from __future__ import annotations

from dataclasses import dataclass

from phigate.policy.engine import Action, PolicyContext, Stage, Verdict
from phigate.queue.models import MessageClass

REASON = ("Marketing mail needs the practice's postal address: set [policy] postal_address "
          "(it goes into the visible footer)")


@dataclass(frozen=True)
class PostalAddressRule:
    postal_address: str
    name: str = "postal-address"
    description: str = "Marketing mail is refused until [policy] postal_address is set"
    stages: frozenset[Stage] = frozenset({Stage.DATA})

    def check(self, ctx: PolicyContext) -> Verdict | None:
        if ctx.message_class != MessageClass.MARKETING or self.postal_address.strip():
            return None
        # 451: a configuration gap on our side; the application retries once it is fixed.
        return Verdict(Action.REJECT, REASON, f"451 4.7.0 {REASON}")
