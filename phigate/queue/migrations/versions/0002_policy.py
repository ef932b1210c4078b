"""policy: consents (and their history), suppressions, campaigns, feedback events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=32)


_PURPOSE = ("marketing", "hipaa_marketing_authorization", "email_phi")


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("state", _enum("campaignstate", "pending", "approved", "paused"),
                  nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("approved_by", sa.String(length=255), nullable=True),
        sa.Column("approved_ip", sa.String(length=64), nullable=True),
        sa.Column("approved_at", sa.DateTime(), nullable=True),
        sa.Column("paused_at", sa.DateTime(), nullable=True),
        sa.Column("pause_reason", sa.Text(), nullable=True),
        sa.Column("complaints", sa.Integer(), nullable=False),
        sa.Column("unsubscribes", sa.Integer(), nullable=False),
        sa.Column("feedback_bounces", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_table(
        "consent_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("purpose", _enum("consentpurpose", *_PURPOSE), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("patient_id", sa.String(length=128), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("paid", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
    )
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_events_address"), ["address"],
                              unique=False)

    op.create_table(
        "consents",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("purpose", _enum("consentpurpose", *_PURPOSE), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("patient_id", sa.String(length=128), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("paid", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
        sa.UniqueConstraint("address", "purpose", name=op.f("uq_consents_address")),
    )
    op.create_table(
        "feedback_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("feedback_type", sa.String(length=64), nullable=True),
        sa.Column("campaign_id", sa.String(length=128), nullable=True),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("dkim_result", sa.String(length=16), nullable=True),
        sa.Column("authentication_results", sa.Text(), nullable=True),
        sa.Column("suppressed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_events")),
    )
    with op.batch_alter_table("feedback_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_events_campaign_id"), ["campaign_id"],
                              unique=False)
        batch_op.create_index("ix_feedback_events_kind_at", ["kind", "received_at"],
                              unique=False)

    op.create_table(
        "soft_bounces",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_soft_bounces")),
    )
    op.create_table(
        "suppressions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("scope", _enum("suppressionscope", "marketing", "all"), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("campaign_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("address", "scope", name=op.f("uq_suppressions_address")),
    )


def downgrade() -> None:
    op.drop_table("suppressions")
    op.drop_table("soft_bounces")
    with op.batch_alter_table("feedback_events", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_events_kind_at")
        batch_op.drop_index(batch_op.f("ix_feedback_events_campaign_id"))
    op.drop_table("feedback_events")
    op.drop_table("consents")
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_events_address"))
    op.drop_table("consent_events")
    op.drop_table("campaigns")
