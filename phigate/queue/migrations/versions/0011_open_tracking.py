"""privacy-safe open tracking: per-campaign counts, a keyed digest set, hourly counts (issue 19)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign_opens",
        sa.Column("campaign_id", sa.String(128), nullable=False),
        sa.Column("hash_key", sa.LargeBinary(32), nullable=True),
        sa.Column("unique_opens", sa.Integer(), nullable=False),
        sa.Column("proxy_fetches", sa.Integer(), nullable=False),
        sa.Column("fetches", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_campaign_opens")),
    )
    op.create_table(
        "open_marks",
        sa.Column("campaign_id", sa.String(128), nullable=False),
        sa.Column("digest", sa.LargeBinary(16), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "digest", name=op.f("pk_open_marks")),
    )
    op.create_table(
        "open_hours",
        sa.Column("campaign_id", sa.String(128), nullable=False),
        sa.Column("hour", sa.DateTime(), nullable=False),
        sa.Column("unique_opens", sa.Integer(), nullable=False),
        sa.Column("proxy_fetches", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "hour", name=op.f("pk_open_hours")),
    )


def downgrade() -> None:
    op.drop_table("open_hours")
    op.drop_table("open_marks")
    op.drop_table("campaign_opens")
