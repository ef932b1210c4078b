"""The built-in rules. Each is small, named, and explains itself in its reason.

Order matters only for cost and for which reason a refused client reads: cheap refusals
(null MX, suppression, consent) come first, the scanner-based rules last.
"""

from __future__ import annotations

from dataclasses import dataclass

from phigate.config import ScannerSettings, Settings
from phigate.policy.consent import ConsentStore
from phigate.policy.engine import Action, PolicyContext, Rule, Stage, Verdict
from phigate.policy.null_mx import NullMxChecker, make_sync_resolver
from phigate.policy.rules.checks import (
    CampaignApprovalRule,
    MarketingConsentRule,
    NullMxRule,
    PhiDestinationRule,
    SuppressionRule,
)
from phigate.policy.rules.postal_address import PostalAddressRule
from phigate.policy.stores import PolicyStores
from phigate.queue.models import MessageClass

_ACTIONS = {"tag": Action.TAG, "quarantine": Action.QUARANTINE, "reject": Action.REJECT}


@dataclass(frozen=True)
class PhiByClassRule:
    """Turn the scanner's PHI verdict into the action configured for the message class.

    Marketing is special (45 CFR 164.508(a)(3)): with a HIPAA marketing authorization on
    file for every recipient the PHI may go (tagged: verified TLS); without, the configured
    marketing action applies, and "tag" is read as quarantine because unauthorised PHI in
    marketing must not leave. Without a consent store every marketing message is treated
    as unauthorised.
    """

    settings: ScannerSettings
    consents: ConsentStore | None = None
    name: str = "phi-by-class"
    description: str = "PHI found: tag, quarantine or reject depending on the message class"
    stages: frozenset[Stage] = frozenset({Stage.DATA})

    def check(self, ctx: PolicyContext) -> Verdict | None:
        if ctx.scan is None or ctx.scan.verdict != "phi":
            return None
        action = _ACTIONS[self.settings.action_for(ctx.message_class)]
        categories = ", ".join(ctx.scan.categories) or "unscannable content"
        reason = f"PHI found in {ctx.message_class} mail ({categories})"
        if ctx.message_class == MessageClass.MARKETING:
            if self._all_authorized(ctx):
                return Verdict(Action.TAG, f"{reason}; HIPAA marketing authorization on file")
            action = max(action, Action.QUARANTINE)
            reason += " without a HIPAA marketing authorization for every recipient"
        if action == Action.REJECT:
            return Verdict(action, reason, f"550 5.7.1 Message refused: {reason}")
        return Verdict(action, reason)

    def _all_authorized(self, ctx: PolicyContext) -> bool:
        if self.consents is None or not ctx.recipients:
            return False
        holders = self.consents.holders(ctx.recipients, "hipaa_marketing_authorization")
        return all(r.strip().lower() in holders for r in ctx.recipients)


def default_rules(
    scanner: ScannerSettings,
    stores: PolicyStores | None = None,
    settings: Settings | None = None,
) -> list[Rule]:
    """The rule list ``serve`` uses. Without ``stores`` (and ``settings``) only the
    scanner's rule runs, for tools that have no database."""
    if stores is None or settings is None:
        return [PhiByClassRule(scanner)]
    policy = settings.policy
    rules: list[Rule] = []
    if policy.check_null_mx:
        resolver = make_sync_resolver(settings.delivery.dns_servers,
                                      timeout=policy.dns_timeout_seconds)
        rules.append(NullMxRule(NullMxChecker(resolver)))
    allowed = tuple(d.lower() for d in policy.phi_allowed_domains) or (
        settings.server.domain.lower(),)
    rules += [
        SuppressionRule(stores),
        MarketingConsentRule(stores),
        PostalAddressRule(policy.postal_address),
        CampaignApprovalRule(stores, require_campaign=policy.marketing_requires_campaign),
        PhiByClassRule(scanner, stores.consents),
        PhiDestinationRule(stores, allowed),
    ]
    return rules
