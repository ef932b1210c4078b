"""The ordered rule engine: small rules, one signature, every hit recorded with its reason.

A rule looks at a :class:`PolicyContext` and returns a :class:`Verdict` or ``None`` (no
opinion). Rules run in order; every verdict is kept as a hit (for the audit log and the
admin), and the strongest action wins: reject > quarantine > hold > tag > accept. A reject
stops evaluation, since nothing after it can change the outcome.

Rules run at two stages: ``rcpt`` (per recipient, before the message is transferred: refuse
early and cheaply) and ``data`` (per message, with the parsed headers and the scan result).
Reasons are shown to clients and admins: they may name categories, never content.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from phigate.queue.models import MessageClass

if TYPE_CHECKING:
    from phigate.accounts.store import Account
    from phigate.phi_scanner import ScanResult


class Action(enum.IntEnum):
    """Ordered by strength: a stronger action overrides a weaker one."""

    ACCEPT = 0
    TAG = 1  # accept, but mark as PHI (delivery then demands verified TLS)
    HOLD = 2  # accept and wait (e.g. campaign awaiting approval)
    QUARANTINE = 3  # accept and hold for an admin's review
    REJECT = 4

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str
    #: The SMTP reply for a reject, e.g. "550 5.7.1 ..."; built from the reason if empty.
    reply: str = ""


@dataclass(frozen=True)
class RuleHit:
    rule: str
    action: Action
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "action": self.action.label, "reason": self.reason}


class HeaderFields(Protocol):
    """The submitted header's fields as the submission checks read them (one pass, strict):
    values unfolded, names compared without regard to case."""

    def get(self, name: str) -> str | None: ...
    def keys(self) -> list[str]: ...


class Stage(enum.StrEnum):
    """When a rule runs: per recipient before the transfer, or on the whole message."""

    RCPT = "rcpt"
    DATA = "data"


@dataclass
class PolicyContext:
    stage: Stage
    account: Account | None
    sender: str
    recipients: Sequence[str]
    message_class: MessageClass
    client_ip: str | None = None
    #: The recipient under consideration at the rcpt stage.
    recipient: str | None = None
    headers: HeaderFields | None = None
    scan: ScanResult | None = None
    campaign_id: str | None = None
    #: Suppression scopes already looked up in this SMTP transaction, by normalised
    #: address (the submission server keeps one per envelope): RCPT fills it, DATA asks
    #: the store only for recipients not in it, so each recipient costs one lookup.
    suppressions: dict[str, frozenset[str]] | None = None


class Rule(Protocol):
    """One policy rule. ``stages`` says when it runs ("rcpt", "data")."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def stages(self) -> frozenset[Stage]: ...

    def check(self, ctx: PolicyContext) -> Verdict | None: ...


@dataclass
class Decision:
    action: Action = Action.ACCEPT
    hits: list[RuleHit] = field(default_factory=list)
    reply: str = ""

    @property
    def reason(self) -> str:
        strongest = [h for h in self.hits if h.action == self.action]
        return "; ".join(h.reason for h in strongest)


class PolicyEngine:
    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = list(rules)

    def evaluate(self, ctx: PolicyContext) -> Decision:
        decision = Decision()
        for rule in self.rules:
            if ctx.stage not in rule.stages:
                continue
            verdict = rule.check(ctx)
            if verdict is None:
                continue
            decision.hits.append(RuleHit(rule.name, verdict.action, verdict.reason))
            if verdict.action > decision.action:
                decision.action = verdict.action
                decision.reply = verdict.reply or _reply_for(verdict)
            if verdict.action == Action.REJECT:
                break
        return decision


def _reply_for(verdict: Verdict) -> str:
    if verdict.action == Action.REJECT:
        return f"550 5.7.1 {verdict.reason}"
    return ""
