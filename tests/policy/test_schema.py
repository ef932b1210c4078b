"""Migration 0002 creates exactly the policy tables the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import phigate.queue.policy_models  # noqa: F401  (registers the tables)
from phigate.queue.models import Base
from phigate.runtime import Runtime


def test_policy_tables_match_the_migration(runtime: Runtime) -> None:
    with runtime.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    assert {"consents", "consent_events", "suppressions", "campaigns", "feedback_events",
            "soft_bounces"} <= set(Base.metadata.tables)
