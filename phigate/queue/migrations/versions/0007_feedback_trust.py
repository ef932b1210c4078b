"""feedback you can trust: reports tied to our mail (issue 13 item 1)

messages.header_id (hash of the Message-ID header), feedback_events.trust, feedback_seen.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("header_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_messages_header_id"), ["header_id"], unique=False)
    with op.batch_alter_table("feedback_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trust", sa.String(length=16), nullable=True))
    op.create_table(
        "feedback_seen",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_feedback_seen")),
    )
    with op.batch_alter_table("feedback_seen", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_seen_seen_at"), ["seen_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("feedback_seen", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_seen_seen_at"))
    op.drop_table("feedback_seen")
    with op.batch_alter_table("feedback_events", schema=None) as batch_op:
        batch_op.drop_column("trust")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_header_id"))
        batch_op.drop_column("header_id")
