"""secure pickup: recipients whose PHI waits behind phigate's HTTPS page (issue 18)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATES = ("waiting", "viewed", "replied", "locked", "expired", "deleted", "shredded")


def upgrade() -> None:
    op.create_table(
        "pickups",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(32), nullable=False),
        sa.Column("recipient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("sender", sa.String(998), nullable=False),
        sa.Column("message_class", sa.String(32), nullable=False),
        sa.Column("state", sa.Enum(*_STATES, name="pickupstate", native_enum=False,
                                   length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("question", sa.String(120), nullable=True),
        sa.Column("code_hash", sa.String(64), nullable=True),
        sa.Column("code_expires_at", sa.DateTime(), nullable=True),
        sa.Column("codes_sent", sa.Integer(), nullable=False),
        sa.Column("last_code_at", sa.DateTime(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("session_hash", sa.String(64), nullable=True),
        sa.Column("session_expires_at", sa.DateTime(), nullable=True),
        sa.Column("viewed_at", sa.DateTime(), nullable=True),
        sa.Column("replied_at", sa.DateTime(), nullable=True),
        sa.Column("destroyed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"],
                                name=op.f("fk_pickups_message_id_messages"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["recipient_id"], ["recipients.id"],
                                name=op.f("fk_pickups_recipient_id_recipients"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pickups")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_pickups_token_hash")),
        sa.UniqueConstraint("recipient_id", name=op.f("uq_pickups_recipient_id")),
    )
    op.create_index(op.f("ix_pickups_message_id"), "pickups", ["message_id"])
    op.create_index(op.f("ix_pickups_state"), "pickups", ["state"])
    op.create_index(op.f("ix_pickups_expires_at"), "pickups", ["expires_at"])


def downgrade() -> None:
    op.drop_table("pickups")
