"""bounce incidents: destination domains refusing us for a reason on our side

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bounce_incidents",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("hold_until", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_bounce_incidents")),
    )


def downgrade() -> None:
    op.drop_table("bounce_incidents")
