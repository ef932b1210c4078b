"""transport security: MTA-STS cache, TLS-RPT counters, TLS policy per attempt, REQUIRETLS,
delay notices

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mta_sts_policies",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("policy_id", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("mx", sa.JSON(), nullable=False),
        sa.Column("max_age", sa.Integer(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("refresh_failed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_mta_sts_policies")),
    )
    op.create_table(
        "tls_report_counts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("policy_domain", sa.String(length=255), nullable=False),
        sa.Column("policy_type", sa.String(length=16), nullable=False),
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("result_type", sa.String(length=48), nullable=False),
        sa.Column("receiving_mx", sa.String(length=255), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tls_report_counts")),
    )
    op.create_index("ix_tls_report_counts_key", "tls_report_counts",
                    ["day", "policy_domain", "policy_type", "policy_id", "result_type",
                     "receiving_mx"], unique=True)
    op.create_table(
        "tls_reports_sent",
        sa.Column("policy_domain", sa.String(length=255), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("policy_domain", "day", name=op.f("pk_tls_reports_sent")),
    )
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tls_policy", sa.String(length=16), nullable=True))
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delay_notified_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("require_tls", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("require_tls")
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.drop_column("delay_notified_at")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("tls_policy")
    op.drop_table("tls_reports_sent")
    op.drop_index("ix_tls_report_counts_key", table_name="tls_report_counts")
    op.drop_table("tls_report_counts")
    op.drop_table("mta_sts_policies")
