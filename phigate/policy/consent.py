"""The consent registry: per address (and optional patient id), per purpose.

Purposes: ``marketing`` (opt-in), ``hipaa_marketing_authorization`` (45 CFR 164.508(a)(3):
marketing that uses PHI; may expire; may be a paid communication) and ``email_phi`` (the
patient asked for PHI by email despite the risks). ``consents`` holds the current state for
fast checks at RCPT time; ``consent_events`` keeps every grant and revocation with its
source, evidence, time and the acting user.

Revoking takes effect for mail already queued: a revoked marketing opt-in cancels the
address's queued marketing, a revoked authorization its queued marketing that carries PHI,
a revoked ``email_phi`` its queued PHI mail.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from phigate.audit.log import Actor, AuditLog
from phigate.audit.records import consent_digest
from phigate.clock import utcnow
from phigate.errors import UserError
from phigate.policy.addresses import valid_forward_path
from phigate.policy.queue_effects import cancel_pending, normalize_address
from phigate.queue.db import read_only
from phigate.queue.models import MessageClass
from phigate.queue.policy_models import Consent, ConsentEvent, ConsentPurpose

PURPOSES = tuple(purpose.value for purpose in ConsentPurpose)
ACTIONS = ("grant", "revoke")
CSV_COLUMNS = ("address", "purpose", "action", "source", "evidence", "patient_id", "expires",
               "paid")
_TRUE = {"1", "true", "yes", "y"}
_FALSE = {"", "0", "false", "no", "n"}


@dataclass(frozen=True)
class ConsentChange:
    """One grant or revocation, as the CLI, an import row or an integration gives it."""

    address: str
    purpose: str
    action: str = "grant"
    source: str = "cli"
    evidence: str | None = None
    patient_id: str | None = None
    expires_at: datetime | None = None
    paid: bool = False


@dataclass(frozen=True)
class ConsentEntry:
    address: str
    purpose: str
    granted: bool
    patient_id: str | None
    expires_at: datetime | None
    paid: bool
    source: str
    evidence: str | None
    updated_at: datetime

    def active(self, now: datetime) -> bool:
        return self.granted and (self.expires_at is None or self.expires_at > now)

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        return {
            "address": self.address, "purpose": self.purpose, "granted": self.granted,
            "active": self.active(now or utcnow()), "patient_id": self.patient_id,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "paid": self.paid, "source": self.source, "evidence": self.evidence,
            "updated_at": self.updated_at.isoformat(),
        }


def validate_change(change: ConsentChange) -> ConsentChange:
    """The change with its address normalised; raises UserError naming the problem."""
    address = normalize_address(change.address)
    if not valid_forward_path(address):
        raise UserError(f"not a valid email address: {change.address!r}")
    if change.purpose not in PURPOSES:
        raise UserError(f"unknown purpose {change.purpose!r}: use {', '.join(PURPOSES)}")
    if change.action not in ACTIONS:
        raise UserError(f"unknown action {change.action!r}: use grant or revoke")
    if change.expires_at is not None and change.purpose != "hipaa_marketing_authorization":
        raise UserError("only a hipaa_marketing_authorization can have an expiry date")
    return ConsentChange(address, change.purpose, change.action, change.source or "cli",
                         change.evidence or None, change.patient_id or None,
                         change.expires_at, change.paid)


class ConsentStore:
    def __init__(self, engine: Engine, audit: AuditLog) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # Lookups asked per recipient and message: they must not queue for the write lock.
        self._readers = sessionmaker(read_only(engine), expire_on_commit=False)
        self._audit = audit

    def apply(self, change: ConsentChange, *, actor: Actor, now: datetime | None = None
              ) -> list[str]:
        """Record one grant or revocation (audited); returns ids of messages it cancelled."""
        change = validate_change(change)
        now = now or utcnow()
        with self._sessions.begin() as session:
            cancelled = self._apply(session, change, actor, now)
            sealed = self._audit.record(
                actor, f"consent.{change.action}", session=session,
                detail={"address": change.address, "purpose": change.purpose,
                        "source": change.source, "evidence": change.evidence,
                        "cancelled_messages": cancelled},
            )
            self._seal(session, [change], sealed)
        return cancelled

    def import_changes(self, changes: Sequence[ConsentChange], *, actor: Actor, origin: str,
                       now: datetime | None = None) -> int:
        """Apply already validated changes in ONE transaction: all of them or none."""
        now = now or utcnow()
        with self._sessions.begin() as session:
            cancelled: list[str] = []
            for change in changes:
                cancelled += self._apply(session, change, actor, now)
            digests = sorted({consent_digest(c.address, c.purpose, c.action == "grant")
                              for c in changes})
            sealed = self._audit.record(actor, "consent.import", session=session,
                                        detail={"file": origin, "rows": len(changes),
                                                "cancelled_messages": sorted(set(cancelled)),
                                                "row_digests": digests})
            self._seal(session, changes, sealed)
        return len(changes)

    @staticmethod
    def _seal(session: Session, changes: Sequence[ConsentChange], audit_hash: str) -> None:
        """Give the rows the hash of the entry that made them (``audit verify`` checks)."""
        session.flush()
        for change in changes:
            session.execute(update(Consent).where(
                Consent.address == change.address,
                Consent.purpose == ConsentPurpose(change.purpose)).values(audit_hash=audit_hash))

    def _apply(self, session: Session, change: ConsentChange, actor: Actor, now: datetime
               ) -> list[str]:
        purpose = ConsentPurpose(change.purpose)
        granted = change.action == "grant"
        row = session.scalar(select(Consent).where(Consent.address == change.address,
                                                   Consent.purpose == purpose))
        if row is None:
            row = Consent(address=change.address, purpose=purpose)
            session.add(row)
        row.granted = granted
        row.source = change.source
        row.evidence = change.evidence
        row.updated_at = now
        if granted:
            row.expires_at = change.expires_at
            row.paid = change.paid
        if change.patient_id is not None:
            row.patient_id = change.patient_id
        session.add(ConsentEvent(
            at=now, address=change.address, purpose=purpose, action=change.action,
            patient_id=change.patient_id, expires_at=change.expires_at, paid=change.paid,
            source=change.source, evidence=change.evidence, actor=actor.name,
        ))
        if granted:
            return []
        reason = f"cancelled: {purpose.value} consent revoked"
        if purpose == ConsentPurpose.MARKETING:
            return cancel_pending(session, change.address, now=now, reason=reason,
                                  message_class=MessageClass.MARKETING)
        if purpose == ConsentPurpose.HIPAA_MARKETING_AUTHORIZATION:
            return cancel_pending(session, change.address, now=now, reason=reason,
                                  message_class=MessageClass.MARKETING, phi_only=True)
        return cancel_pending(session, change.address, now=now, reason=reason, phi_only=True)

    def holders(self, addresses: Iterable[str], purpose: str, *, now: datetime | None = None
                ) -> set[str]:
        """Which of ``addresses`` (normalised) have an active consent for ``purpose``."""
        wanted = sorted({normalize_address(a) for a in addresses})
        if not wanted:
            return set()
        now = now or utcnow()
        with self._readers.begin() as session:
            return set(session.scalars(
                select(Consent.address).where(
                    Consent.address.in_(wanted),
                    Consent.purpose == ConsentPurpose(purpose),
                    Consent.granted.is_(True),
                    or_(Consent.expires_at.is_(None), Consent.expires_at > now),
                )
            ))

    def entries(self, *, purpose: str | None = None, address: str | None = None,
                include_revoked: bool = False) -> list[ConsentEntry]:
        query = select(Consent).order_by(Consent.address, Consent.purpose)
        if purpose is not None:
            query = query.where(Consent.purpose == ConsentPurpose(purpose))
        if address is not None:
            query = query.where(Consent.address == normalize_address(address))
        if not include_revoked:
            query = query.where(Consent.granted.is_(True))
        with self._sessions.begin() as session:
            return [
                ConsentEntry(row.address, str(row.purpose), row.granted, row.patient_id,
                             row.expires_at, row.paid, row.source, row.evidence,
                             row.updated_at)
                for row in session.scalars(query)
            ]

    def history(self, address: str) -> list[dict[str, Any]]:
        with self._sessions.begin() as session:
            events = session.scalars(
                select(ConsentEvent).where(ConsentEvent.address == normalize_address(address))
                .order_by(ConsentEvent.id)
            )
            return [{"at": e.at.isoformat(), "purpose": str(e.purpose), "action": e.action,
                     "source": e.source, "evidence": e.evidence, "actor": e.actor}
                    for e in events]


# -- CSV import (an EHR export) ------------------------------------------------------------


def parse_consent_csv(text: str, *, name: str = "FILE") -> list[ConsentChange]:
    """Every row of the file as a validated change; the first bad row raises UserError
    with its line number, so a caller can refuse the whole file before writing anything.

    Columns (header row required): ``address``, ``purpose``, and optionally ``action``
    (grant|revoke, default grant), ``source``, ``evidence``, ``patient_id``, ``expires``
    (ISO date or date-time, for authorizations), ``paid`` (true/false).
    """
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [column.strip().lower() for column in reader.fieldnames or []]
    if "address" not in header or "purpose" not in header:
        raise UserError(f"{name}: line 1: the header must name at least the columns "
                        "address and purpose")
    unknown = [column for column in header if column not in CSV_COLUMNS]
    if unknown:
        raise UserError(f"{name}: line 1: unknown column {unknown[0]!r} (known: "
                        f"{', '.join(CSV_COLUMNS)})")
    reader.fieldnames = header
    changes = []
    for row in reader:
        try:
            if None in row:  # more fields than the header names
                raise UserError("more fields than the header has columns")
            values = {key: (value or "").strip() for key, value in row.items()}
            changes.append(validate_change(ConsentChange(
                address=values.get("address", ""),
                purpose=values.get("purpose", ""),
                action=values.get("action") or "grant",
                source=values.get("source") or f"import:{Path(name).name}",
                evidence=values.get("evidence") or None,
                patient_id=values.get("patient_id") or None,
                expires_at=_parse_expiry(values.get("expires", "")),
                paid=_parse_bool(values.get("paid", "")),
            )))
        except UserError as error:
            # line_num: the physical line where the row ends (quoted newlines count).
            raise UserError(f"{name}: line {reader.line_num}: {error}") from None
    if not changes:
        raise UserError(f"{name}: no rows to import")
    return changes


def _parse_expiry(text: str) -> datetime | None:
    if not text:
        return None
    try:
        if len(text) == 10:
            # A date: the authorization is valid through the end of that day (UTC).
            return datetime.combine(date.fromisoformat(text), time.max, tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"expires: not an ISO date: {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_expiry(text: str | None) -> datetime | None:
    """``--expires`` of the CLI: an ISO date or date-time (UTC unless it says otherwise)."""
    return _parse_expiry((text or "").strip())


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise UserError(f"paid: expected true or false, got {text!r}")
