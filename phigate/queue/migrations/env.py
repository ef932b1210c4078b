"""Alembic environment: runs against the engine phigate hands over (no alembic.ini)."""

from alembic import context

import phigate.queue.pickup_models
import phigate.queue.policy_models  # noqa: F401  (registers the policy tables on Base)
from phigate.queue.models import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
