"""Schema of the marketing and feedback policy: consent, suppressions, campaigns, feedback.

Same declarative ``Base`` as :mod:`phigate.queue.models`, so one metadata (and one Alembic
history) covers the whole database. Addresses are stored lowercased: matching a
suppression or a consent must not depend on how an application spelt the address.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from phigate.queue.models import Base, BigId, _enum


class ConsentPurpose(enum.StrEnum):
    MARKETING = "marketing"  # opt-in to marketing mail
    #: 45 CFR 164.508(a)(3): marketing that uses PHI needs the patient's authorization.
    HIPAA_MARKETING_AUTHORIZATION = "hipaa_marketing_authorization"
    #: The patient asked for PHI by email despite the risks (45 CFR 164.522(b)).
    EMAIL_PHI = "email_phi"


class SuppressionScope(enum.StrEnum):
    MARKETING = "marketing"  # unsubscribes, complaints: marketing stops, reminders go on
    ALL = "all"  # hard bounces, invalid addresses, admin: nothing goes to the address


class CampaignState(enum.StrEnum):
    PENDING = "pending"  # seen, not approved: its messages wait in awaiting-approval
    APPROVED = "approved"
    PAUSED = "paused"  # stopped automatically (complaint rate) or by an admin


class Consent(Base):
    """The current consent of one address for one purpose (the history is in events)."""

    __tablename__ = "consents"
    # The unique constraint's index serves lookups by address as well.
    __table_args__ = (UniqueConstraint("address", "purpose"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    address: Mapped[str] = mapped_column(String(320))
    purpose: Mapped[ConsentPurpose] = mapped_column(_enum(ConsentPurpose))
    granted: Mapped[bool] = mapped_column(Boolean)
    patient_id: Mapped[str | None] = mapped_column(String(128))
    #: HIPAA authorizations may carry an expiry date; None means no expiry.
    expires_at: Mapped[datetime | None]
    #: The marketing involves financial remuneration (the authorization must say so).
    paid: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(255))
    evidence: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]
    #: Hash of the audit entry that made this state (``audit verify`` re-checks it).
    audit_hash: Mapped[str | None] = mapped_column(String(64))


class ConsentEvent(Base):
    """Append-only history: every grant and revocation with source, evidence and time."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    address: Mapped[str] = mapped_column(String(320), index=True)
    purpose: Mapped[ConsentPurpose] = mapped_column(_enum(ConsentPurpose))
    action: Mapped[str] = mapped_column(String(16))  # grant | revoke
    patient_id: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[datetime | None]
    paid: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(255))
    evidence: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(255))


class Suppression(Base):
    """One address that must not receive mail of a scope, with why and since when."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("address", "scope"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    address: Mapped[str] = mapped_column(String(320))
    scope: Mapped[SuppressionScope] = mapped_column(_enum(SuppressionScope))
    #: What caused it (a fixed set, used as a metric label): hard_bounce | soft_bounces |
    #: complaint | unsubscribe | manual.
    kind: Mapped[str] = mapped_column(String(32))
    #: Free text for the admin ("5.1.1 user unknown", "patient called"); never content.
    reason: Mapped[str] = mapped_column(Text)
    #: Who or what added it: "one-click", "mailto", "feedback", "cli:<os user>", ...
    source: Mapped[str] = mapped_column(String(255))
    campaign_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]


class Campaign(Base):
    """A marketing campaign (``X-Phigate-Campaign``): approval and feedback counters.

    Accepted, delivered, deferred and bounced counts come from the queue's recipients;
    the counters here are what only feedback knows.
    """

    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[CampaignState] = mapped_column(_enum(CampaignState))
    created_at: Mapped[datetime]
    approved_by: Mapped[str | None] = mapped_column(String(255))
    approved_ip: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    pause_reason: Mapped[str | None] = mapped_column(Text)
    complaints: Mapped[int] = mapped_column(Integer, default=0)
    unsubscribes: Mapped[int] = mapped_column(Integer, default=0)
    #: Bounces that came back after the next hop had accepted the message.
    feedback_bounces: Mapped[int] = mapped_column(Integer, default=0)
    #: Hash of the ``campaign.approve`` audit entry (``audit verify`` re-checks it).
    audit_hash: Mapped[str | None] = mapped_column(String(64))


class FeedbackEvent(Base):
    """One message read by the feedback listener: what it was and what phigate did."""

    __tablename__ = "feedback_events"
    __table_args__ = (Index("ix_feedback_events_kind_at", "kind", "received_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(16))  # bounce | complaint | unsubscribe | other
    feedback_type: Mapped[str | None] = mapped_column(String(64))
    campaign_id: Mapped[str | None] = mapped_column(String(128), index=True)
    #: [{"address", "permanent", "status"}]: whom it was about (no diagnostic text).
    recipients: Mapped[list[Any]] = mapped_column(JSON, default=list)
    dkim_result: Mapped[str | None] = mapped_column(String(16))
    #: The ``Authentication-Results`` value (RFC 8601) recording the report's DKIM check.
    authentication_results: Mapped[str | None] = mapped_column(Text)
    #: Suppressions this message added.
    suppressed: Mapped[int] = mapped_column(Integer, default=0)
    #: What tied the report to our mail: token | sent | reporter | unverified | duplicate
    #: (:mod:`phigate.policy.feedback.trust`); only tied reports change anything.
    trust: Mapped[str | None] = mapped_column(String(16))


class SoftBounceCount(Base):
    """Soft bounces of an address within the current window (``[feedback]`` settings)."""

    __tablename__ = "soft_bounces"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime]
    last_at: Mapped[datetime]


class IssuedToken(Base):
    """What an opaque unsubscribe/VERP token stands for (:mod:`phigate.policy.tokens`).

    The token itself carries only ``id`` (a keyed hash of these claims) and a MAC, so no
    address is readable in URLs, return paths, or the logs of proxies and web servers.
    """

    __tablename__ = "issued_tokens"

    #: Hex of the token's 9-byte keyed identifier.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(320))
    scope: Mapped[str] = mapped_column(String(64))
    campaign_id: Mapped[str | None] = mapped_column(String(128))
    message_id: Mapped[str | None] = mapped_column(String(255))
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class MetaValue(Base):
    """Small facts about the installation itself (e.g. until when legacy tokens count)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class BounceIncident(Base):
    """A destination domain refusing us for a reason on our side (blocklisted IP, failed
    SPF/DKIM, no PTR, rate limits): one row per domain while the incident lasts.

    Marketing mail to the domain waits until ``hold_until`` (a back-off that grows with
    ``count``); treatment and operations mail keeps its normal schedule. The row goes when
    an admin clears it or a delivery to the domain succeeds (both audited).
    """

    __tablename__ = "bounce_incidents"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))  # a sender-side BounceReason
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    count: Mapped[int] = mapped_column(Integer, default=1)
    hold_until: Mapped[datetime]


class FeedbackSeen(Base):
    """Reports already counted: keys of report Message-IDs, original Message-ID plus
    recipient, and complaint tokens (SHA-256, no address in the clear)."""

    __tablename__ = "feedback_seen"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(index=True)


class CampaignOpens(Base):
    """Estimated opens of one campaign that opted in (``X-Phigate-Track-Opens: yes``).

    Counts only: no row names a recipient, an address, an IP or a user agent. ``hash_key``
    keys the set of :class:`OpenMark` digests that makes opens unique; closing the
    campaign's tracking sets it to NULL and deletes the marks, the counts stay.
    """

    __tablename__ = "campaign_opens"

    campaign_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hash_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    unique_opens: Mapped[int] = mapped_column(Integer, default=0)
    #: Fetches by prefetching proxies (Apple Mail Privacy Protection, Gmail's image proxy).
    proxy_fetches: Mapped[int] = mapped_column(Integer, default=0)
    #: Every counted fetch, repeats included.
    fetches: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class OpenMark(Base):
    """One keyed digest of a delivered copy's pixel nonce: unreadable without the key,
    unlinkable to anyone once the key is destroyed (and deleted with it)."""

    __tablename__ = "open_marks"

    campaign_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)


class OpenHour(Base):
    """Unique opens and proxy fetches first seen in one hour (the campaign's series)."""

    __tablename__ = "open_hours"

    campaign_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    unique_opens: Mapped[int] = mapped_column(Integer, default=0)
    proxy_fetches: Mapped[int] = mapped_column(Integer, default=0)
