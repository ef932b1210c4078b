"""Approvals and consents carry the hash of the audit entry that made them (``audit_hash``);
``audit verify`` re-checks each against that entry, so ``UPDATE campaigns SET approved_by…``
or a consent flipped by SQL no longer goes unnoticed (issue 13 finding 5).

The entries themselves are authentic once the chain verified, so a row is genuine when the
entry it names exists, is of the right kind and says what the row says. Consent rows last
changed before migration 0010 (``meta.audit_seal_since``) without a matching entry are
counted as unsealed, not failed: older imports recorded no per-row detail.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from phigate.audit.log import ChainBreak
from phigate.queue.policy_models import Campaign, Consent, MetaValue

SEAL_SINCE_KEY = "audit_seal_since"


@dataclass(frozen=True)
class RecordsReport:
    checked: int
    unsealed: int
    broken: ChainBreak | None


def consent_digest(address: str, purpose: str, granted: bool) -> str:
    """What a ``consent.import`` entry records per row (no address in clear)."""
    text = f"{address}\n{purpose}\n{int(granted)}".encode()
    return hashlib.sha256(text).hexdigest()[:20]


def verify_records(session: Session, sealing: dict[str, tuple[str, Any]]) -> RecordsReport:
    checked = 0
    for campaign in session.scalars(select(Campaign).where(Campaign.approved_by.is_not(None))):
        if not _approval_matches(campaign, sealing.get(campaign.audit_hash or "")):
            return RecordsReport(checked, 0, ChainBreak(0, f"campaign {campaign.id}: approval "
                                                           "does not match its audit entry"))
        checked += 1
    seal_since = _seal_since(session)
    unsealed = 0
    for consent in session.scalars(select(Consent)):
        if _consent_matches(consent, sealing.get(consent.audit_hash or "")):
            checked += 1
        elif consent.audit_hash is None and seal_since and consent.updated_at <= seal_since:
            unsealed += 1
        else:
            return RecordsReport(checked, unsealed, ChainBreak(
                0, f"consent record {consent.id}: does not match its audit entry"))
    return RecordsReport(checked, unsealed, None)


def _approval_matches(campaign: Campaign, entry: tuple[str, Any] | None) -> bool:
    if entry is None or entry[0] != "campaign.approve" or not isinstance(entry[1], dict):
        return False
    detail = entry[1]
    return (detail.get("campaign") == campaign.id
            and detail.get("approved_by") == campaign.approved_by
            and detail.get("approved_ip") == campaign.approved_ip)


def _consent_matches(consent: Consent, entry: tuple[str, Any] | None) -> bool:
    if entry is None or not isinstance(entry[1], dict):
        return False
    action, detail = entry
    if action == "consent.import":
        digest = consent_digest(consent.address, str(consent.purpose), consent.granted)
        return digest in detail.get("row_digests", [])
    expected = "consent.grant" if consent.granted else "consent.revoke"
    return (action == expected and detail.get("address") == consent.address
            and detail.get("purpose") == str(consent.purpose))


def _seal_since(session: Session) -> datetime | None:
    row = session.get(MetaValue, SEAL_SINCE_KEY)
    return None if row is None else datetime.fromisoformat(row.value)
