"""What phigate does with feedback: bounces, complaints and unsubscribes become suppressions.

- A hard bounce (the address itself is bad: :mod:`phigate.policy.feedback.reasons`)
  suppresses the address for ``all`` mail; soft bounces (a full or disabled mailbox, an
  unclear reason, the way there) are counted per address and suppress for ``all`` once
  ``[feedback] soft_bounce_limit`` arrive within ``soft_bounce_window_days``. A failure on
  our side (blocklisted IP, SPF/DKIM, reverse DNS, rejected sender, rate limits) or about
  the one message (size, content) never counts against the recipient.
- A complaint (ARF) suppresses ``marketing`` and counts against the campaign, which is
  paused when its complaint rate passes the threshold (:mod:`phigate.policy.campaigns`).
- An unsubscribe (mailto or one-click) suppresses ``marketing`` and counts on the campaign.

Each message is applied in one transaction: the feedback event, the suppressions, the
cancelled queued mail, the counters and the audit entries commit together or not at all
(then the listener answers 451 and the sender retries).
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.message import Message

import dns.exception
import dns.rdatatype
import dns.resolver
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from phigate.audit.log import SYSTEM
from phigate.clock import utcnow
from phigate.config import Settings
from phigate.observability.metrics import METRICS
from phigate.policy.campaigns import valid_campaign_id
from phigate.policy.feedback.arf import DnsTxtLookup, find_arf, returned_header_values
from phigate.policy.feedback.classify import FeedbackRecipient, FeedbackReport, classify
from phigate.policy.feedback.gate import FeedbackGate, GateSettings, GateVerdict
from phigate.policy.feedback.reasons import counts_against_address, is_sender_side
from phigate.policy.feedback.trust import Trust
from phigate.policy.incidents import domain_of
from phigate.policy.null_mx import make_sync_resolver
from phigate.policy.queue_effects import normalize_address
from phigate.policy.stores import PolicyStores
from phigate.policy.suppression import AddResult
from phigate.policy.tokens import TokenClaims, TokenSigner
from phigate.queue.policy_models import FeedbackEvent, SoftBounceCount

_RECORDED_RECIPIENTS = 20  # a forged report naming thousands is recorded by its first few
_RETURNED_TOKEN = re.compile(r"(?:/u/|unsubscribe\+|bounces\+)([a-z2-7]{16,})", re.IGNORECASE)


@dataclass(frozen=True)
class FeedbackOutcome:
    kind: str
    recipients: int
    suppressed: int
    campaign_id: str | None = None
    campaign_paused: bool = False
    #: token | sent | reporter | unverified | duplicate (:class:`Trust`).
    trust: str = "token"
    #: Recipients the report named that it was not allowed to change.
    ignored: int = 0
    #: The messages that pause held (their senders are told once this commits).
    held: tuple[str, ...] = ()


def make_txt_lookup(resolver: dns.resolver.Resolver) -> DnsTxtLookup:
    """dkimpy's DNS hook on our resolver: ``(name: bytes, timeout=…) -> TXT bytes | None``."""

    def lookup(name: bytes, timeout: float = 5.0) -> bytes | None:
        try:
            answer = resolver.resolve(name.decode("ascii"), dns.rdatatype.TXT,
                                      lifetime=timeout)
        except (dns.exception.DNSException, UnicodeDecodeError):
            return None
        for record in answer:
            return b"".join(record.strings)
        return None

    return lookup


class FeedbackProcessor:
    def __init__(self, settings: Settings, stores: PolicyStores, engine: Engine,
                 signer: TokenSigner | None, dns_lookup: DnsTxtLookup | None = None) -> None:
        self._settings = settings
        self._stores = stores
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._signer = signer
        if dns_lookup is None:
            dns_lookup = make_txt_lookup(make_sync_resolver(
                settings.delivery.dns_servers, timeout=settings.policy.dns_timeout_seconds))
        self._dns = dns_lookup
        feedback = settings.feedback
        self._gate = FeedbackGate(GateSettings(
            match_days=feedback.match_days, trusted_reporters=tuple(feedback.trusted_reporters),
            max_recipients=feedback.max_recipients), signer)

    def handle(self, raw: bytes, envelope_recipient: str, *, now: datetime | None = None
               ) -> FeedbackOutcome:
        """Classify one message delivered to ``envelope_recipient`` and act on it, as far as
        it is tied to mail we sent (:mod:`phigate.policy.feedback.gate`)."""
        report = classify(raw, signer=self._signer, envelope_recipient=envelope_recipient,
                          dns=self._dns, verify_dkim=self._settings.feedback.verify_dkim,
                          authserv_id=self._settings.server.hostname)
        campaign = self._campaign_of(report, raw)
        message = email.message_from_bytes(raw, policy=policy.compat32)
        return self.apply(report, campaign_id=campaign, now=now, message=message)

    def apply(self, report: FeedbackReport, *, campaign_id: str | None,
              now: datetime | None = None, message: Message | None = None) -> FeedbackOutcome:
        """Act on ``report``. With the ``message`` it came in, only as far as the gate lets
        it; without (an admin's or a test's own report), on every recipient it names."""
        now = now or utcnow()
        if campaign_id is not None and not valid_campaign_id(campaign_id):
            campaign_id = None
        with self._sessions.begin() as session:
            verdict = (self._gate.judge(session, report, message, now=now)
                       if message is not None else GateVerdict(Trust.TOKEN, report.recipients))
            acting = verdict.recipients if verdict.acts else []
            if not verdict.acts:
                campaign_id = None  # an unverified report counts on no campaign either
            suppressed, held = self._act(session, report.kind, report.feedback_type,
                                         acting, campaign_id, now)
            trust = verdict.trust.value if verdict.trust is not None else "duplicate"
            session.add(FeedbackEvent(
                received_at=now, kind=report.kind, feedback_type=report.feedback_type,
                campaign_id=campaign_id,
                recipients=[{"address": normalize_address(r.address), "permanent": r.permanent,
                             "status": r.status, "category": r.category}
                            for r in report.recipients[:_RECORDED_RECIPIENTS]],
                dkim_result=report.dkim_result,
                authentication_results=report.authentication_results,
                suppressed=suppressed, trust=trust,
            ))
        self._count_metrics(report, trust)
        return FeedbackOutcome(report.kind, len(acting), suppressed, campaign_id,
                               campaign_paused=held is not None, trust=trust,
                               ignored=verdict.ignored, held=tuple(held or ()))

    def _act(self, session: Session, kind: str, feedback_type: str | None,
             acting: list[FeedbackRecipient], campaign_id: str | None, now: datetime
             ) -> tuple[int, list[str] | None]:
        """Apply the report; the suppressions added, and the messages held if it paused the
        campaign (None if it did not)."""
        by_address = {normalize_address(r.address): r for r in acting if "@" in r.address}
        suppressed, held = 0, None
        if kind == "bounce":
            for address, recipient in by_address.items():
                suppressed += self._bounce(session, address, recipient, campaign_id, now)
        elif kind in ("complaint", "unsubscribe"):
            for address in by_address:
                added = self._suppress_marketing(session, kind, address, feedback_type,
                                                 campaign_id, now)
                suppressed += added.added
                if campaign_id and (kind == "complaint" or added.added):
                    counter = "complaints" if kind == "complaint" else "unsubscribes"
                    self._stores.campaigns.count(session, campaign_id, counter, now=now)
            if campaign_id and kind == "complaint" and by_address:
                held = self._stores.campaigns.check_complaint_rate(
                    session, campaign_id, now=now)
        return suppressed, held

    def unsubscribe(self, claims: TokenClaims, *, method: str,
                    now: datetime | None = None) -> AddResult:
        """A verified one-click (or mailto) unsubscribe: suppress marketing, count it."""
        now = now or utcnow()
        campaign = claims.campaign if claims.campaign and valid_campaign_id(
            claims.campaign) else None
        with self._sessions.begin() as session:
            result = self._suppress_marketing(session, "unsubscribe",
                                              normalize_address(claims.recipient), method,
                                              campaign, now)
            if result.added and campaign:
                self._stores.campaigns.count(session, campaign, "unsubscribes", now=now)
        if result.added:
            METRICS.record_unsubscribe("one_click" if method == "one-click" else "mailto")
        return result

    # -- pieces -------------------------------------------------------------------------

    def _suppress_marketing(self, session: Session, kind: str, address: str,
                            detail: str | None, campaign_id: str | None, now: datetime
                            ) -> AddResult:
        source = {"complaint": "feedback", "unsubscribe": detail or "mailto"}.get(kind, kind)
        reason = (f"complaint ({detail or 'unknown type'})" if kind == "complaint"
                  else f"unsubscribe ({source})")
        return self._stores.suppressions.add(
            address, "marketing", kind=kind, reason=reason, source=source,
            actor=SYSTEM, campaign_id=campaign_id, now=now, session=session)

    def _bounce(self, session: Session, address: str, recipient: FeedbackRecipient,
                campaign_id: str | None, now: datetime) -> int:
        """By reason: a bad address is suppressed for ``all``; a problem on our side (our IP
        blocklisted, our SPF failing, ...) or with this one message says nothing about the
        address and is only recorded; the rest counts as a soft bounce."""
        status = recipient.status
        if recipient.temporary:
            return 0  # Action: delayed is a warning, not a failure: it counts for nothing
        if recipient.permanent:
            if campaign_id:
                self._stores.campaigns.count(session, campaign_id, "feedback_bounces", now=now)
            added = self._stores.suppressions.add(
                address, "all", kind="hard_bounce", reason=f"hard bounce ({status or '5.0.0'}, "
                f"{recipient.category or 'undefined'})",
                source="feedback", actor=SYSTEM, campaign_id=campaign_id, now=now,
                session=session)
            return int(added.added)
        if is_sender_side(recipient.category):
            domain = domain_of(address)
            if domain is not None and self._stores.incidents is not None:
                self._stores.incidents.record(session, domain, str(recipient.category),
                                              now=now)
            return 0
        if not counts_against_address(recipient.category):
            return 0
        settings = self._settings.feedback
        row = session.get(SoftBounceCount, address, with_for_update=True)
        window = timedelta(days=settings.soft_bounce_window_days)
        if row is None:
            row = SoftBounceCount(address=address, count=0, window_start=now, last_at=now)
            session.add(row)
        if now - row.window_start > window:
            row.count, row.window_start = 0, now
        row.count += 1
        row.last_at = now
        if row.count < max(settings.soft_bounce_limit, 1):
            return 0
        added = self._stores.suppressions.add(
            address, "all", kind="soft_bounces",
            reason=f"{row.count} soft bounces within {settings.soft_bounce_window_days} days",
            source="feedback", actor=SYSTEM, campaign_id=campaign_id, now=now, session=session)
        return int(added.added)

    def _campaign_of(self, report: FeedbackReport, raw: bytes) -> str | None:
        """The campaign a report is about: from the verified token it was addressed to, or
        from a verified token in the returned message's headers (complaints to the FBL
        address carry the original List-Unsubscribe)."""
        if report.token is not None:
            return report.token.campaign
        if report.kind != "complaint" or self._signer is None:
            return None
        arf = find_arf(email.message_from_bytes(raw, policy=policy.compat32))
        if arf is None:
            return None
        values = (returned_header_values(arf, "List-Unsubscribe")
                  + returned_header_values(arf, "Return-Path"))
        for value in values:
            for token in _RETURNED_TOKEN.findall(value):
                claims = self._signer.parse(token)
                if claims is not None and claims.campaign:
                    return claims.campaign
        return None

    @staticmethod
    def _count_metrics(report: FeedbackReport, trust: str) -> None:
        if trust in ("unverified", "duplicate"):
            METRICS.record_feedback_ignored(report.kind, trust)
            return
        if report.kind == "bounce":
            for recipient in report.recipients:
                METRICS.record_bounce(permanent=recipient.permanent)
        elif report.kind == "complaint":
            METRICS.record_complaint()
        elif report.kind == "unsubscribe" and report.recipients:
            METRICS.record_unsubscribe("mailto")
