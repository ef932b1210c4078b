"""The admin service's policy half: campaigns, suppressions and consents.

The policy stores change the data and write the audit entry in one transaction; this adds
the role check (a refusal audited as ``action.denied``), the acting admin, and the rule
that every change to who gets mail is recorded with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

from phigate.admin.access import Gate
from phigate.admin.actions import ActionRefused
from phigate.admin.campaign_results import CampaignResults, campaign_results
from phigate.admin.roles import Identity, Role
from phigate.audit.log import AuditLog
from phigate.config import Settings
from phigate.errors import UserError
from phigate.mta.delivery.review_notices import Review, notify_campaign_review
from phigate.policy.campaigns import CampaignView, valid_campaign_id
from phigate.policy.consent import ConsentChange, ConsentEntry
from phigate.policy.open_tracking import OpenStore
from phigate.policy.stores import PolicyStores
from phigate.policy.suppression import AddResult, SuppressionEntry
from phigate.queue.store import SqlQueueStore

_Entry = TypeVar("_Entry", SuppressionEntry, ConsentEntry)


class PolicyAdministration:
    """Mixed into :class:`~phigate.admin.service.AdminService`, which provides these."""

    store: SqlQueueStore
    audit: AuditLog
    settings: Settings
    identity: Identity
    gate: Gate
    clock: Callable[[], datetime]

    @cached_property
    def policy(self) -> PolicyStores:
        return PolicyStores.build(self.store.engine, self.audit, self.settings)

    def campaigns(self) -> list[CampaignView]:
        """Every campaign: awaiting approval first, then paused, then approved."""
        self.gate.require(Role.VIEWER, "campaign.list")
        order = {"pending": 0, "paused": 1, "approved": 2}
        return sorted(self.policy.campaigns.views(), key=lambda v: (order.get(v.state, 3), v.id))

    def campaign_results(self, view: CampaignView) -> CampaignResults:
        """A campaign's results with its (estimated) opens, for the campaign screen."""
        self.gate.require(Role.VIEWER, "campaign.show")
        return campaign_results(self.store.engine, view, opens=OpenStore(self.store).summary(
            view.id), pause_line=self.settings.policy.campaign_complaint_threshold)

    def approve_campaign(self, campaign_id: str) -> int:
        """Approve (or resume) a campaign; records who, from which IP and when. Returns the
        number of waiting messages released."""
        self.gate.require(Role.OPERATOR, "campaign.approve")
        now = self.clock()
        released = self.policy.campaigns.approve(campaign_id, actor=self.identity.actor,
                                                 now=now)
        notify_campaign_review(self.store, self.settings, released, Review.RELEASED, now=now)
        return len(released)

    def pause_campaign(self, campaign_id: str, *, reason: str) -> int:
        """Pause a campaign: its queued messages are held. Returns how many were held."""
        self.gate.require(Role.OPERATOR, "campaign.pause")
        if not valid_campaign_id(campaign_id):
            raise UserError(f"not a campaign id: {campaign_id!r}")
        now = self.clock()
        held = self.policy.campaigns.pause(campaign_id, _reason(reason, "pausing a campaign"),
                                           actor=self.identity.actor, now=now)
        notify_campaign_review(self.store, self.settings, held, Review.HELD, now=now)
        return len(held)

    def suppressions(self, search: str | None = None, *, limit: int = 1000
                     ) -> list[SuppressionEntry]:
        """Suppressions whose address contains ``search`` (all without one), newest first."""
        self.gate.require(Role.VIEWER, "suppression.list")
        return _newest_matching(self.policy.suppressions.entries(), search, limit)

    def add_suppression(self, address: str, scope: str, *, reason: str,
                        source: str = "admin") -> AddResult:
        """Stop mail to ``address`` (``marketing`` or ``all``); cancels its queued mail in
        that scope."""
        self.gate.require(Role.OPERATOR, "suppression.add")
        return self.policy.suppressions.add(
            address, scope, kind="manual", reason=_reason(reason, "a suppression"),
            source=f"{source}:{self.identity.user}", actor=self.identity.actor,
            now=self.clock())

    def remove_suppression(self, address: str, *, reason: str, scope: str | None = None
                           ) -> int:
        """Lift the address's suppression (one scope, or every one); returns how many."""
        self.gate.require(Role.OPERATOR, "suppression.remove")
        return self.policy.suppressions.remove(
            address, actor=self.identity.actor, scope=scope,
            reason=_reason(reason, "lifting a suppression"))

    def consents(self, search: str | None = None, *, limit: int = 1000) -> list[ConsentEntry]:
        """Consent entries (granted and revoked) whose address contains ``search``."""
        self.gate.require(Role.VIEWER, "consent.list")
        entries = self.policy.consents.entries(include_revoked=True)
        return _newest_matching(entries, search, limit)

    def consent_history(self, address: str) -> list[dict[str, Any]]:
        """Every grant and revocation for the address, oldest first."""
        self.gate.require(Role.VIEWER, "consent.list")
        return self.policy.consents.history(address)

    def grant_consent(self, address: str, purpose: str, *, evidence: str,
                      source: str = "admin") -> list[str]:
        return self._change_consent("grant", address, purpose, evidence, source)

    def revoke_consent(self, address: str, purpose: str, *, evidence: str,
                       source: str = "admin") -> list[str]:
        """Revoke; returns the ids of queued messages the revocation cancelled."""
        return self._change_consent("revoke", address, purpose, evidence, source)

    def _change_consent(self, action: str, address: str, purpose: str, evidence: str,
                        source: str) -> list[str]:
        self.gate.require(Role.OPERATOR, f"consent.{action}")
        change = ConsentChange(address=address, purpose=purpose, action=action,
                               source=f"{source}:{self.identity.user}",
                               evidence=_reason(evidence, f"a consent {action}"))
        return self.policy.consents.apply(change, actor=self.identity.actor, now=self.clock())


def _reason(text: str, what: str) -> str:
    """The stripped reason: every change to who gets mail is recorded with its why."""
    if not text.strip():
        raise ActionRefused(f"{what} needs a reason")
    return text.strip()


def _newest_matching(entries: Sequence[_Entry], search: str | None, limit: int
                     ) -> list[_Entry]:
    # The stores match whole addresses only; an admin searches by part ("@example.org",
    # a surname). Lists here are thousands of rows at most, so filtering in Python is fine.
    needle = (search or "").strip().lower()
    matching = [e for e in entries if needle in e.address] if needle else list(entries)
    matching.sort(key=_updated, reverse=True)
    return matching[:limit]


def _updated(entry: SuppressionEntry | ConsentEntry) -> datetime:
    return entry.created_at if isinstance(entry, SuppressionEntry) else entry.updated_at
