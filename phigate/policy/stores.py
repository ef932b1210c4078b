"""The policy's view of the store: consent, suppression and campaigns, built once.

``serve`` builds one :class:`PolicyStores` for the rules, the unsubscribe endpoint and the
feedback listener; the CLI builds one per command. Every method is synchronous (a short
transaction); asyncio code calls them through ``asyncio.to_thread``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from phigate.config import Settings
from phigate.policy.campaigns import CampaignStore
from phigate.policy.consent import ConsentStore
from phigate.policy.incidents import IncidentStore
from phigate.policy.suppression import SuppressionStore
from phigate.runtime import Runtime


@dataclass(frozen=True)
class PolicyStores:
    consents: ConsentStore
    suppressions: SuppressionStore
    campaigns: CampaignStore
    #: Sender-side bounce incidents per destination domain (None: not tracked).
    incidents: IncidentStore | None = field(default=None)

    @classmethod
    def from_runtime(cls, runtime: Runtime, settings: Settings | None = None) -> PolicyStores:
        settings = settings or runtime.settings
        return cls(
            consents=ConsentStore(runtime.engine, runtime.audit),
            suppressions=SuppressionStore(runtime.engine, runtime.audit),
            campaigns=CampaignStore(runtime.engine, runtime.audit, settings.policy),
            incidents=IncidentStore.configured(runtime.engine, runtime.audit,
                                                settings.feedback),
        )
