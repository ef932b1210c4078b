"""audit seals: campaigns.audit_hash, consents.audit_hash (the audit entry behind each)

Existing rows are sealed with the newest audit entry that made their state (campaign.approve
for the campaign; consent.grant / consent.revoke for the address and purpose). Consents
left without one (older imports) are counted as unsealed by ``audit verify`` while they
are older than ``meta.audit_seal_since``, recorded here.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("audit_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("audit_hash", sa.String(length=64), nullable=True))
    connection = op.get_bind()
    approvals: dict[str, str] = {}
    consents: dict[tuple[str, str, bool], str] = {}
    rows = connection.execute(sa.text(
        "SELECT action, detail, hash FROM audit_events WHERE action IN "
        "('campaign.approve', 'consent.grant', 'consent.revoke') ORDER BY id"))
    for action, raw, digest in rows:
        detail: Any = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(detail, dict):
            continue
        if action == "campaign.approve" and detail.get("campaign"):
            approvals[str(detail["campaign"])] = digest
        elif detail.get("address") and detail.get("purpose"):
            key = (str(detail["address"]), str(detail["purpose"]), action == "consent.grant")
            consents[key] = digest
    for campaign, digest in approvals.items():
        connection.execute(sa.text("UPDATE campaigns SET audit_hash = :h WHERE id = :c "
                                   "AND approved_by IS NOT NULL"), {"h": digest, "c": campaign})
    for (address, purpose, granted), digest in consents.items():
        connection.execute(sa.text(
            "UPDATE consents SET audit_hash = :h WHERE address = :a AND purpose = :p "
            "AND granted = :g"), {"h": digest, "a": address, "p": purpose, "g": granted})
    connection.execute(sa.text("INSERT INTO meta (key, value) VALUES ('audit_seal_since', :v)"),
                       {"v": datetime.now(UTC).isoformat()})


def downgrade() -> None:
    op.execute("DELETE FROM meta WHERE key = 'audit_seal_since'")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_column("audit_hash")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("audit_hash")
