"""What an admin may see of a queued message: the envelope and the decisions, never the
body (``queue show``, the TUI's message screen)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from phigate.queue.models import Message, MessageClass, MessageState, Recipient, RecipientState


@dataclass(frozen=True)
class RecipientView:
    id: int
    address: str
    state: RecipientState
    attempts: int
    next_attempt_at: datetime
    last_code: int | None
    last_text: str | None


@dataclass(frozen=True)
class MessageView:
    """What an admin may see of a message: the envelope and decisions, never the body."""

    id: str
    created_at: datetime
    state: MessageState
    sender: str
    username: str | None
    client_ip: str | None
    size: int
    message_class: MessageClass
    campaign_id: str | None
    phi_verdict: str
    phi_categories: list[str]
    rule_hits: list[dict[str, str]]
    hold_reason: str | None
    purged: bool
    recipients: list[RecipientView] = field(default_factory=list)


def message_view(message: Message, recipients: Sequence[Recipient]) -> MessageView:
    return MessageView(
        id=message.id,
        created_at=message.created_at,
        state=message.state,
        sender=message.sender,
        username=message.username,
        client_ip=message.client_ip,
        size=message.size,
        message_class=message.message_class,
        campaign_id=message.campaign_id,
        phi_verdict=message.phi_verdict,
        phi_categories=list(message.phi_categories),
        rule_hits=[dict(hit) for hit in message.rule_hits],
        hold_reason=message.hold_reason,
        purged=message.wrapped_key is None,
        recipients=[
            RecipientView(
                id=r.id,
                address=r.address,
                state=r.state,
                attempts=r.attempts,
                next_attempt_at=r.next_attempt_at,
                last_code=r.last_code,
                last_text=r.last_text,
            )
            for r in recipients
        ],
    )


def as_dict(view: MessageView) -> dict[str, Any]:
    """JSON-ready form of a :class:`MessageView` (for ``--json`` output)."""
    return {
        "id": view.id,
        "created_at": view.created_at.isoformat(),
        "state": str(view.state),
        "sender": view.sender,
        "username": view.username,
        "client_ip": view.client_ip,
        "size": view.size,
        "class": view.message_class,
        "campaign": view.campaign_id,
        "phi_verdict": view.phi_verdict,
        "phi_categories": view.phi_categories,
        "rule_hits": view.rule_hits,
        "hold_reason": view.hold_reason,
        "purged": view.purged,
        "recipients": [
            {
                "address": r.address,
                "state": str(r.state),
                "attempts": r.attempts,
                "next_attempt_at": r.next_attempt_at.isoformat(),
                "last_code": r.last_code,
                "last_text": r.last_text,
            }
            for r in view.recipients
        ],
    }
