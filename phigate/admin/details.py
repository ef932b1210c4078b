"""What the admin service answers with: message details, attempts, quarantine items and
the outcome of each action (plain data for the CLI, the TUI and ``--json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from phigate.queue.models import MessageClass
from phigate.queue.views import MessageView


@dataclass(frozen=True)
class ActionOutcome:
    message_id: str
    ok: bool
    #: One line: what was done, or why not. Never message content.
    detail: str


@dataclass(frozen=True)
class AttemptView:
    recipient: str
    started_at: datetime
    host: str | None
    code: int | None
    text: str | None
    permanent: bool
    tls_version: str | None
    tls_cipher: str | None
    cert_verified: bool | None
    #: none | opportunistic | required | verify | mta-sts | dane (None: before issue 17)
    tls_policy: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"recipient": self.recipient, "started_at": self.started_at.isoformat(),
                "host": self.host, "code": self.code, "text": self.text,
                "permanent": self.permanent, "tls_version": self.tls_version,
                "tls_cipher": self.tls_cipher, "cert_verified": self.cert_verified,
                "tls_policy": self.tls_policy}


@dataclass(frozen=True)
class MessageDetail:
    view: MessageView
    attempts: list[AttemptView] = field(default_factory=list)
    #: Secure pickup's audit entries (notice, code, failures, views, downloads, reply).
    pickup_events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class QuarantineItem:
    message_id: str
    created_at: datetime
    sender: str
    message_class: MessageClass
    phi_verdict: str
    phi_categories: list[str]
    reason: str | None
    recipients: int
