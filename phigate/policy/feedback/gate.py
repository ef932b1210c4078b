"""The feedback gate: decides, per report, whom it may change (:mod:`.trust`).

Runs inside the transaction that applies the report, so the "seen" marks commit with the
suppressions they allowed, or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.message import Message

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from phigate.policy.feedback.arf import find_arf, returned_header_values
from phigate.policy.feedback.classify import returned_tokens
from phigate.policy.feedback.model import FeedbackRecipient, FeedbackReport
from phigate.policy.feedback.trust import (
    Trust,
    dedupe_key,
    is_trusted_reporter,
    original_message_id,
    report_message_id,
)
from phigate.policy.queue_effects import normalize_address
from phigate.policy.tokens import TokenClaims, TokenSigner
from phigate.queue.header_id import message_id_key
from phigate.queue.models import Message as QueuedMessage
from phigate.queue.models import Recipient, RecipientState
from phigate.queue.policy_models import FeedbackSeen

_TRIED = (RecipientState.DELIVERED, RecipientState.BOUNCED, RecipientState.EXPIRED,
          RecipientState.DEFERRED)
_RETURNED_TOKEN_HEADERS = ("List-Unsubscribe", "Return-Path")


@dataclass(frozen=True)
class GateVerdict:
    trust: Trust | None  # None: a duplicate, already counted
    recipients: list[FeedbackRecipient] = field(default_factory=list)
    #: Recipients named by the report but left alone (not ours, already counted, capped).
    ignored: int = 0

    @property
    def acts(self) -> bool:
        return self.trust not in (None, Trust.UNVERIFIED) and bool(self.recipients)


@dataclass(frozen=True)
class GateSettings:
    match_days: int = 30
    trusted_reporters: tuple[str, ...] = ()
    max_recipients: int = 20


class FeedbackGate:
    def __init__(self, settings: GateSettings, signer: TokenSigner | None) -> None:
        self._settings = settings
        self._signer = signer

    def judge(self, session: Session, report: FeedbackReport, message: Message, *,
              now: datetime) -> GateVerdict:
        report_id = report_message_id(message)
        if report_id and not _first_time(session, dedupe_key("report", report_id), now):
            return GateVerdict(None, ignored=len(report.recipients))
        if report.kind == "bounce":
            verdict = self._bounce(session, report, message, now)
        elif report.kind == "complaint":
            verdict = self._complaint(session, report, message, now)
        elif report.kind == "unsubscribe" and report.token is not None:
            verdict = GateVerdict(Trust.TOKEN, report.recipients[:1])
        else:
            verdict = GateVerdict(Trust.UNVERIFIED, ignored=len(report.recipients))
        return _deduplicated(session, verdict, original_message_id(message), now)

    def _bounce(self, session: Session, report: FeedbackReport, message: Message,
                now: datetime) -> GateVerdict:
        if report.token is not None and report.token.kind == "verp":
            wanted = normalize_address(report.token.recipient)
            mine = [r for r in report.recipients if normalize_address(r.address) == wanted]
            return GateVerdict(Trust.TOKEN, mine[:1], len(report.recipients) - len(mine[:1]))
        original = original_message_id(message)
        if original is None:
            return GateVerdict(Trust.UNVERIFIED, ignored=len(report.recipients))
        named = {normalize_address(r.address): r for r in report.recipients}
        sent = self._sent_to(session, original, list(named)[: self._settings.max_recipients],
                             now)
        mine = [recipient for address, recipient in named.items() if address in sent]
        trust = Trust.SENT if mine else Trust.UNVERIFIED
        return GateVerdict(trust, mine, len(report.recipients) - len(mine))

    def _sent_to(self, session: Session, original: str, addresses: list[str],
                 now: datetime) -> set[str]:
        """Which of ``addresses`` we tried to deliver the message ``original`` to."""
        if not addresses:
            return set()
        since = now - timedelta(days=self._settings.match_days)
        rows = session.scalars(
            select(Recipient.address).join(QueuedMessage)
            .where(QueuedMessage.header_id == message_id_key(original))
            .where(QueuedMessage.created_at >= since)
            .where(Recipient.address.in_(addresses))
            .where(Recipient.state.in_(_TRIED)))
        return {normalize_address(address) for address in rows}

    def _complaint(self, session: Session, report: FeedbackReport, message: Message,
                   now: datetime) -> GateVerdict:
        if report.dkim_result == "pass" and is_trusted_reporter(
                report.dkim_domain, list(self._settings.trusted_reporters)):
            capped = report.recipients[: self._settings.max_recipients]
            return GateVerdict(Trust.REPORTER, capped, len(report.recipients) - len(capped))
        for token, claims in self._returned_tokens(message):
            if not _first_time(session, dedupe_key("token", token), now):
                return GateVerdict(None, ignored=len(report.recipients))
            return GateVerdict(Trust.TOKEN, [FeedbackRecipient(claims.recipient, False)])
        return GateVerdict(Trust.UNVERIFIED, ignored=len(report.recipients))

    def _returned_tokens(self, message: Message) -> list[tuple[str, TokenClaims]]:
        arf = find_arf(message)
        if arf is None or self._signer is None:
            return []
        values = [value for name in _RETURNED_TOKEN_HEADERS
                  for value in returned_header_values(arf, name)]
        return returned_tokens(values, self._signer)


def _deduplicated(session: Session, verdict: GateVerdict, original: str | None,
                  now: datetime) -> GateVerdict:
    """Drop recipients this original message was already reported for."""
    if not verdict.acts or original is None:
        return verdict
    fresh = [r for r in verdict.recipients
             if _first_time(session, dedupe_key("original", original,
                                                normalize_address(r.address)), now)]
    if len(fresh) == len(verdict.recipients):
        return verdict
    return replace(verdict, recipients=fresh,
                   ignored=verdict.ignored + len(verdict.recipients) - len(fresh),
                   trust=verdict.trust if fresh else None)


def _first_time(session: Session, key: str, now: datetime) -> bool:
    """Mark ``key`` seen; False if it already was."""
    if session.get(FeedbackSeen, key) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(FeedbackSeen(key=key, seen_at=now))
    except IntegrityError:  # a concurrent listener counted it first
        return False
    return True
