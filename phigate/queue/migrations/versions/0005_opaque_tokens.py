"""opaque tokens: issued_tokens (token id -> claims) and meta (legacy token cut-off)

Installations that already sent mail hold address-bearing (v1) tokens in mailboxes; they
keep working until ``meta.legacy_tokens_until`` (upgrade time + 400 days, the unsubscribe
token lifetime). A fresh database never accepts them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEGACY_DAYS = 400


def upgrade() -> None:
    op.create_table(
        "issued_tokens",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.String(length=128), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issued_tokens")),
    )
    with op.batch_alter_table("issued_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issued_tokens_expires_at"), ["expires_at"],
                              unique=False)
    meta = op.create_table(
        "meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_meta")),
    )
    connection = op.get_bind()
    had_mail = connection.execute(sa.text("SELECT 1 FROM messages LIMIT 1")).first()
    if had_mail is not None:
        until = datetime.now(UTC) + timedelta(days=LEGACY_DAYS)
        op.bulk_insert(meta, [{"key": "legacy_tokens_until", "value": until.isoformat()}])


def downgrade() -> None:
    op.drop_table("meta")
    with op.batch_alter_table("issued_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issued_tokens_expires_at"))
    op.drop_table("issued_tokens")
