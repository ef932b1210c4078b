"""Rules for consent, suppression, campaigns and where PHI may go.

At RCPT the message class is not known yet (the header comes with DATA), so RCPT checks use
the account's default class: accounts that send marketing by default are refused per
recipient, early. At DATA the header's class is final and every recipient is checked again
for it. A DATA reply covers the whole message (SMTP, unlike LMTP, has no per-recipient
reply after DATA), and dropping a recipient silently would let the sender believe the mail
went out: so one failing recipient refuses the message, and the reply names it, so the
application can resend without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from phigate.policy.campaigns import valid_campaign_id
from phigate.policy.engine import Action, HeaderFields, PolicyContext, Stage, Verdict
from phigate.policy.null_mx import NullMxChecker
from phigate.policy.queue_effects import normalize_address
from phigate.policy.stores import PolicyStores
from phigate.queue.models import MessageClass
from phigate.queue.policy_models import CampaignState


def _targets(ctx: PolicyContext) -> Sequence[str]:
    """The recipient at RCPT, every recipient at DATA."""
    if ctx.stage is Stage.RCPT:
        return [ctx.recipient] if ctx.recipient else []
    return list(ctx.recipients)


def _refuse(ctx: PolicyContext, address: str, problem: str, status: str = "5.7.1",
            code: str = "550") -> Verdict:
    if ctx.stage is Stage.RCPT:
        return Verdict(Action.REJECT, problem, f"{code} {status} {problem}")
    reason = f"recipient <{address}>: {problem}"
    return Verdict(Action.REJECT, reason, f"{code} {status} Message refused: {reason}")


@dataclass(frozen=True)
class SuppressionRule:
    stores: PolicyStores
    name: str = "suppression"
    description: str = ("Recipients suppressed for all mail are refused; those suppressed "
                        "for marketing are refused marketing only")
    stages: frozenset[Stage] = frozenset({Stage.RCPT, Stage.DATA})

    def check(self, ctx: PolicyContext) -> Verdict | None:
        targets = _targets(ctx)
        scopes = self._scopes(ctx, targets)
        for address in targets:
            found = scopes.get(normalize_address(address), frozenset())
            if "all" in found:
                return _refuse(ctx, address, "Recipient address is suppressed (it bounced "
                                             "or an administrator blocked it)")
            if "marketing" in found and ctx.message_class == MessageClass.MARKETING:
                return _refuse(ctx, address, "Recipient has unsubscribed from marketing mail")
        return None

    def _scopes(self, ctx: PolicyContext, targets: Sequence[str]
                ) -> Mapping[str, frozenset[str]]:
        """Each target's suppressed scopes; from the transaction's earlier lookups where
        there are some (the scopes are the same at DATA, only the class may differ)."""
        known = ctx.suppressions
        if known is None:
            return {a: frozenset(s) for a, s in
                    self.stores.suppressions.scopes_for(targets).items()}
        wanted = [a for a in targets if normalize_address(a) not in known]
        if wanted:
            found = self.stores.suppressions.scopes_for(wanted)
            for address in wanted:
                key = normalize_address(address)
                known[key] = frozenset(found.get(key, ()))
        return known


@dataclass(frozen=True)
class MarketingConsentRule:
    stores: PolicyStores
    name: str = "marketing-consent"
    description: str = "Marketing mail needs the recipient's recorded marketing consent"
    stages: frozenset[Stage] = frozenset({Stage.RCPT, Stage.DATA})

    def check(self, ctx: PolicyContext) -> Verdict | None:
        if ctx.message_class != MessageClass.MARKETING:
            return None
        targets = _targets(ctx)
        holders = self.stores.consents.holders(targets, "marketing")
        for address in targets:
            if address.strip().lower() not in holders:
                return _refuse(ctx, address, "No marketing consent on file for this recipient")
        return None


@dataclass(frozen=True)
class CampaignApprovalRule:
    stores: PolicyStores
    require_campaign: bool = True
    name: str = "campaign-approval"
    description: str = "Marketing mail waits until its campaign is approved"
    stages: frozenset[Stage] = frozenset({Stage.DATA})

    def check(self, ctx: PolicyContext) -> Verdict | None:
        if ctx.message_class != MessageClass.MARKETING:
            return None
        campaign = ctx.campaign_id
        if not campaign:
            if not self.require_campaign:
                return None
            reason = "Marketing mail needs an X-Phigate-Campaign header naming its campaign"
            return Verdict(Action.REJECT, reason, f"550 5.7.1 {reason}")
        if not valid_campaign_id(campaign):
            reason = ("Invalid campaign id in X-Phigate-Campaign (letters, digits and ._:- "
                      "up to 64 characters)")
            return Verdict(Action.REJECT, reason, f"550 5.7.1 {reason}")
        state = self.stores.campaigns.state_of(campaign)
        if state == CampaignState.APPROVED:
            return None
        if state == CampaignState.PAUSED:
            return Verdict(Action.HOLD, f"campaign {campaign} is paused")
        return Verdict(Action.HOLD, f"campaign {campaign} awaiting approval")


def is_auto_forwarded(headers: HeaderFields | None) -> bool:
    """``Auto-Submitted`` other than ``no`` (RFC 3834), or ``Resent-*`` fields (RFC 5322)."""
    if headers is None:
        return False
    auto = (headers.get("Auto-Submitted") or "no").strip().lower()
    if not auto.startswith("no"):
        return True
    return any(name.lower().startswith("resent-") for name in headers.keys())


def domain_allowed(address: str, allowed: Sequence[str]) -> bool:
    domain = address.rpartition("@")[2].lower().rstrip(".")
    return any(domain == d or domain.endswith("." + d) for d in allowed)


@dataclass(frozen=True)
class PhiDestinationRule:
    """PHI goes to the allowed domains, or to patients who asked for PHI by email."""

    stores: PolicyStores
    allowed_domains: tuple[str, ...]
    name: str = "phi-destination"
    description: str = ("PHI only to allowed domains or to recipients with email_phi consent; "
                        "auto-forwarded PHI to outside domains is refused")
    stages: frozenset[Stage] = frozenset({Stage.DATA})

    def check(self, ctx: PolicyContext) -> Verdict | None:
        if ctx.scan is None or ctx.scan.verdict != "phi":
            return None
        outside = [a for a in ctx.recipients if not domain_allowed(a, self.allowed_domains)]
        if not outside:
            return None
        if is_auto_forwarded(ctx.headers):
            reason = "Auto-forwarded message with PHI to an outside domain"
            return Verdict(Action.REJECT, reason, f"550 5.7.1 Message refused: {reason}")
        consenting = self.stores.consents.holders(outside, "email_phi")
        without = [a for a in outside if a.strip().lower() not in consenting]
        if not without:
            return None
        return Verdict(Action.QUARANTINE,
                       f"PHI to {len(without)} recipient(s) outside the allowed domains "
                       "without email_phi consent")


@dataclass(frozen=True)
class NullMxRule:
    checker: NullMxChecker
    name: str = "null-mx"
    description: str = "Recipients in a domain that accepts no mail (null MX) are refused"
    stages: frozenset[Stage] = frozenset({Stage.RCPT})

    def check(self, ctx: PolicyContext) -> Verdict | None:
        if not ctx.recipient:
            return None
        if not self.checker.has_null_mx(ctx.recipient.rpartition("@")[2]):
            return None
        # RFC 7505 section 4.2: 556 with enhanced status 5.1.10.
        return _refuse(ctx, ctx.recipient, "Recipient domain accepts no mail (null MX)",
                       status="5.1.10", code="556")
