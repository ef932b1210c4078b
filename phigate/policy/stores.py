"""The policy's view of the store: consent, suppression and campaigns, built once.

``serve`` builds one :class:`PolicyStores` for the rules, the unsubscribe endpoint and the
feedback listener; the CLI builds one per command. Every method is synchronous (a short
transaction); asyncio code calls them through ``asyncio.to_thread``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from phigate.audit.log import AuditLog
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
    def build(cls, engine: Engine, audit: AuditLog, settings: Settings) -> PolicyStores:
        return cls(
            consents=ConsentStore(engine, audit),
            suppressions=SuppressionStore(engine, audit),
            campaigns=CampaignStore(engine, audit, settings.policy),
            incidents=IncidentStore.configured(engine, audit, settings.feedback),
        )

    @classmethod
    def from_runtime(cls, runtime: Runtime, settings: Settings | None = None) -> PolicyStores:
        return cls.build(runtime.engine, runtime.audit, settings or runtime.settings)
