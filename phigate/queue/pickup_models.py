"""The secure-pickup table (issue 18): one row per recipient switched to pickup.

The row holds its own copy of the body, sealed under its own data key (wrapped by the master
key, like ``messages.wrapped_key``), so destroying a pickup's key never touches the message
or other recipients. ``wrapped_key``/``ciphertext`` are NULL once the key is destroyed
(expiry, admin delete, or a download when the class says so). The token and the code are
kept only as keyed hashes; the address is kept because the code goes only to it.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from phigate.queue.models import Base, BigId, MessageClass, _enum


class PickupState(enum.StrEnum):
    WAITING = "waiting"  # notice sent, not opened yet
    VIEWED = "viewed"  # the recipient proved the address and read it
    REPLIED = "replied"  # ... and used their one reply
    LOCKED = "locked"  # too many wrong codes
    EXPIRED = "expired"  # ttl_days passed: key destroyed
    DELETED = "deleted"  # an admin deleted it: key destroyed
    SHREDDED = "shredded"  # downloaded, and the class destroys the key then

    @property
    def readable(self) -> bool:
        return self in (PickupState.WAITING, PickupState.VIEWED, PickupState.REPLIED)


class Pickup(Base):
    __tablename__ = "pickups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: SHA-256 of the token's random part: the lookup key (the token is never stored).
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("recipients.id", ondelete="CASCADE"), unique=True)
    address: Mapped[str] = mapped_column(String(320))
    sender: Mapped[str] = mapped_column(String(998))
    message_class: Mapped[MessageClass] = mapped_column(_enum(MessageClass))
    state: Mapped[PickupState] = mapped_column(_enum(PickupState), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    key_id: Mapped[str] = mapped_column(String(16))
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: The label of the optional second factor (e.g. "Date of birth"); the answer stays
    #: in the sealed body.
    question: Mapped[str | None] = mapped_column(String(120))
    code_hash: Mapped[str | None] = mapped_column(String(64))
    code_expires_at: Mapped[datetime | None]
    codes_sent: Mapped[int] = mapped_column(Integer, default=0)
    last_code_at: Mapped[datetime | None]
    failures: Mapped[int] = mapped_column(Integer, default=0)
    session_hash: Mapped[str | None] = mapped_column(String(64))
    session_expires_at: Mapped[datetime | None]
    viewed_at: Mapped[datetime | None]
    replied_at: Mapped[datetime | None]
    destroyed_at: Mapped[datetime | None]
