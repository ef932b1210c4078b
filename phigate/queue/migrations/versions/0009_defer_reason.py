"""recipients.defer_reason: why a recipient waits, as data (the dashboard counts it)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            "defer_reason",
            sa.Enum("tls_required", "rate_limited", "temporary_failure", name="deferreason",
                    native_enum=False, length=32),
            nullable=True,
        ))
    # Deferrals recorded before this revision carried the reason only in their text.
    op.execute("UPDATE recipients SET defer_reason = 'tls_required' "
               "WHERE state = 'deferred' AND last_text LIKE '4.7.5 TLS required%'")


def downgrade() -> None:
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.drop_column("defer_reason")
