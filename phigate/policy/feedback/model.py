"""What the feedback classifier reports (re-exported by :mod:`phigate.policy.feedback.classify`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from phigate.policy.tokens import TokenClaims

KINDS = ("bounce", "complaint", "unsubscribe", "other")


@dataclass(frozen=True)
class FeedbackRecipient:
    address: str
    #: For bounces: a hard failure (suppress everything) rather than a soft one (count it).
    #: Always False for complaints and unsubscribes, whose scope follows from the kind.
    permanent: bool
    status: str | None = None  # enhanced status code, "5.1.1"
    reason: str | None = None  # the remote's diagnostic text, when the report has one
    #: For bounces: sisimai's name for the reason (:class:`BounceReason`), e.g. "blocked".
    category: str | None = None
    reply_code: str | None = None  # SMTP reply code, "550"
    #: For bounces: the failure is transient (``Action: delayed``, 4.x.x, 4xx).
    temporary: bool = False


@dataclass(frozen=True)
class FeedbackReport:
    kind: str  # one of KINDS
    recipients: list[FeedbackRecipient] = field(default_factory=list)
    #: ARF Feedback-Type, lowercased ("abuse", "auth-failure", ...); None for non-ARF.
    feedback_type: str | None = None
    #: Claims of the verified VERP/unsubscribe token the message was addressed to.
    token: TokenClaims | None = None
    #: DKIM result of an ARF report: pass | fail | none | permerror | temperror.
    dkim_result: str | None = None
    #: ``Authentication-Results`` header value (RFC 8601) recording ``dkim_result``.
    authentication_results: str | None = None
    #: The d= domain of the passing DKIM signature (who vouches for the report).
    dkim_domain: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The shape of ``phigate feedback classify --json`` (DESIGN.md interface contract)."""
        return {
            "kind": self.kind,
            "recipients": [
                {"address": r.address, "permanent": r.permanent, "status": r.status,
                 "reason": r.reason, "category": r.category, "reply_code": r.reply_code}
                for r in self.recipients
            ],
            "feedback_type": self.feedback_type,
            "token": None if self.token is None else {
                "kind": self.token.kind, "recipient": self.token.recipient,
                "scope": self.token.scope, "campaign": self.token.campaign,
                "message_id": self.token.message_id,
            },
            "dkim_result": self.dkim_result,
            "authentication_results": self.authentication_results,
        }
