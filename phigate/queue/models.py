"""The database schema (SQLAlchemy 2.0 declarative). Alembic migrations mirror it.

Bodies never appear in clear: ``message_bodies.ciphertext`` is AES-GCM under a per-message
data key, and ``messages.wrapped_key`` is that key wrapped by the master key. Envelope
addresses are kept in clear because routing, suppression and the admin need them; subjects
and other headers are not stored outside the sealed body.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class MessageClass(enum.StrEnum):
    """What a message is for, as HIPAA sees it: it decides the PHI action and the rules."""

    TREATMENT = "treatment"
    OPERATIONS = "operations"
    MARKETING = "marketing"


class MessageState(enum.StrEnum):
    ACTIVE = "active"  # recipients are being delivered
    HELD = "held"  # an admin put it on hold
    QUARANTINED = "quarantined"  # policy held it for review (e.g. PHI in marketing)
    AWAITING_APPROVAL = "awaiting-approval"  # marketing campaign not yet approved
    CORRUPT = "corrupt"  # our code failed on it repeatedly; parked for an admin
    DONE = "done"  # every recipient reached a final state


class DeferReason(enum.StrEnum):
    """Why a deferred recipient waits: recorded with the deferral, counted by the dashboard
    and /metrics (never parsed back out of the reply text)."""

    TLS_REQUIRED = "tls_required"  # the next hop cannot give the TLS the message needs
    RATE_LIMITED = "rate_limited"  # the destination asked us to slow down
    TEMPORARY_FAILURE = "temporary_failure"  # a 4xx reply, a connection or DNS problem


class RecipientState(enum.StrEnum):
    QUEUED = "queued"  # never tried
    DEFERRED = "deferred"  # tried, failed temporarily, waits for next_attempt_at
    DELIVERED = "delivered"
    BOUNCED = "bounced"  # permanent failure, DSN sent to the sender
    EXPIRED = "expired"  # temporary failures until the lifetime ran out, DSN sent
    CANCELLED = "cancelled"  # removed by an admin or by an unsubscribe
    PICKUP = "pickup"  # no acceptable TLS route: waits behind the secure pickup page

    @property
    def is_final(self) -> bool:
        return self not in (RecipientState.QUEUED, RecipientState.DEFERRED)


PENDING_RECIPIENT_STATES = (RecipientState.QUEUED, RecipientState.DEFERRED)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as naive UTC on every backend, returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _enum(cls: type[enum.Enum]) -> SqlEnum:
    return SqlEnum(
        cls,
        native_enum=False,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime]
    state: Mapped[MessageState] = mapped_column(_enum(MessageState), index=True)
    sender: Mapped[str] = mapped_column(String(998))
    username: Mapped[str | None] = mapped_column(String(255))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    message_class: Mapped[MessageClass] = mapped_column(_enum(MessageClass),
                                                       default=MessageClass.TREATMENT)
    campaign_id: Mapped[str | None] = mapped_column(String(128), index=True)
    #: The scanner's verdict: none | identifiers | phi; the categories, never the text.
    phi_verdict: Mapped[str] = mapped_column(String(16), default="none")
    phi_score: Mapped[float] = mapped_column(Float, default=0.0)
    phi_categories: Mapped[list[Any]] = mapped_column(JSON, default=list)
    #: Policy rule hits: [{"rule", "action", "reason"}]; reasons never quote content.
    rule_hits: Mapped[list[Any]] = mapped_column(JSON, default=list)
    hold_reason: Mapped[str | None] = mapped_column(Text)
    #: Times our own code raised on this message; at 3 it is parked as corrupt.
    processing_errors: Mapped[int] = mapped_column(Integer, default=0)
    final_at: Mapped[datetime | None]
    purged_at: Mapped[datetime | None]
    key_id: Mapped[str] = mapped_column(String(16))
    #: The data key wrapped by the master key; NULL once purged (the body is then unreadable).
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    #: Sent with ``MAIL FROM:<...> REQUIRETLS`` (RFC 8689): only verified TLS to hops that
    #: offer REQUIRETLS, and the flag is passed on.
    require_tls: Mapped[bool] = mapped_column(Boolean, default=False)
    #: SHA-256 of the lowercased Message-ID header: ties a bounce that returns the message
    #: to it (the header itself stays in the sealed body).
    header_id: Mapped[str | None] = mapped_column(String(64), index=True)

    recipients: Mapped[list[Recipient]] = relationship(
        back_populates="message", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def phi(self) -> bool:
        return self.phi_verdict == "phi"


class MessageBody(Base):
    __tablename__ = "message_bodies"

    message_id: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)


class Recipient(Base):
    __tablename__ = "recipients"
    __table_args__ = (
        Index("ix_recipients_due", "state", "next_attempt_at"),
        # The admin's queue listing pages through pending recipients in id order.
        Index("ix_recipients_state_id", "state", "id"),
        Index("ix_recipients_lease", "lease_owner"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    address: Mapped[str] = mapped_column(String(320))
    domain: Mapped[str] = mapped_column(String(255), index=True)
    state: Mapped[RecipientState] = mapped_column(_enum(RecipientState))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]
    last_code: Mapped[int | None] = mapped_column(Integer)
    last_text: Mapped[str | None] = mapped_column(Text)
    #: Set while deferred: why (see :class:`DeferReason`).
    defer_reason: Mapped[DeferReason | None] = mapped_column(_enum(DeferReason))
    final_at: Mapped[datetime | None]
    #: When the sender was told this recipient is delayed (one notice per recipient).
    delay_notified_at: Mapped[datetime | None]

    message: Mapped[Message] = relationship(back_populates="recipients")


class Attempt(Base):
    """One delivery attempt of one recipient, with what TLS the next hop gave us."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("recipients.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    started_at: Mapped[datetime]
    duration_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    host: Mapped[str | None] = mapped_column(String(255))
    code: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str | None] = mapped_column(Text)
    permanent: Mapped[bool] = mapped_column(Boolean, default=False)
    tls_version: Mapped[str | None] = mapped_column(String(32))
    tls_cipher: Mapped[str | None] = mapped_column(String(128))
    cert_verified: Mapped[bool | None] = mapped_column(Boolean)
    #: The TLS policy the attempt ran under (phigate.mta.delivery.tls_policy.TlsPolicy).
    tls_policy: Mapped[str | None] = mapped_column(String(16))


class AuditEvent(Base):
    """Append-only; each row carries the hash of the previous one (a hash chain)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(255))
    actor_ip: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    message_id: Mapped[str | None] = mapped_column(String(32), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class User(Base):
    """A submission account (an application or a person), not an OS user."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    #: Addresses (``a@b``) or domains (``b``) usable in MAIL FROM and From:.
    senders: Mapped[list[Any]] = mapped_column(JSON, default=list)
    #: Message classes the account may use; the first is its default.
    classes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Reply-To: addresses (``a@b``) or domains (``b``) allowed besides ``senders``.
    reply_to: Mapped[list[Any]] = mapped_column(JSON, default=list)


class AuthFailures(Base):
    """Failed logins of one account name, and its lockouts, in the database so that every
    process and node shares them and the CLI and TUI can show and clear them.

    One row per (name, client IP) holds what refuses that pair; the row with ``client_ip``
    ``""`` counts the name's failures from everywhere, which only slow answers down (a
    tarpit). ``last_success_at`` on a pair row exempts that IP from the tarpit.
    """

    __tablename__ = "auth_failures"

    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    client_ip: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    #: Lockouts so far: each doubles the next one (reset after a day without failures).
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]


class MtaStsPolicyRow(Base):
    """A destination's MTA-STS policy (RFC 8461), cached until ``expires_at``."""

    __tablename__ = "mta_sts_policies"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    policy_id: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16))
    mx: Mapped[list[Any]] = mapped_column(JSON, default=list)
    max_age: Mapped[int] = mapped_column(Integer)
    fetched_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    #: The last refresh that failed (the cached policy stays in force meanwhile).
    refresh_failed_at: Mapped[datetime | None]


class TlsReportCount(Base):
    """TLS-RPT (RFC 8460) counters: sessions per day, policy domain, policy and result."""

    __tablename__ = "tls_report_counts"
    __table_args__ = (
        Index("ix_tls_report_counts_key", "day", "policy_domain", "policy_type",
              "policy_id", "result_type", "receiving_mx", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD (UTC)
    policy_domain: Mapped[str] = mapped_column(String(255))
    policy_type: Mapped[str] = mapped_column(String(16))  # sts | tlsa | no-policy-found
    policy_id: Mapped[str] = mapped_column(String(64), default="")
    #: "" for a successful session, else an RFC 8460 result type.
    result_type: Mapped[str] = mapped_column(String(48), default="")
    receiving_mx: Mapped[str] = mapped_column(String(255), default="")
    count: Mapped[int] = mapped_column(Integer, default=0)


class TlsReportSent(Base):
    """A day's report for a policy domain was queued: at most one per day and domain."""

    __tablename__ = "tls_reports_sent"

    policy_domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    sent_at: Mapped[datetime]
