"""The label values phigate's metrics may carry, and the guard that keeps them bounded.

**Labels are bounded and never carry PHI.** No label ever holds an address, a subject, a
user or patient name, a destination domain or a host. Every label value passes through a
:class:`LabelGuard`: fixed sets (results, outcomes, TLS levels...) map anything unknown to
``"other"``; open sets that come from our own code (policy rule names, queue states,
campaign ids) must look like identifiers and are capped in number, after which new values
are counted as ``"other"``. A bug at a call site therefore costs a wrong label, never a PHI
leak or a cardinality explosion.

The fixed sets are ``Literal`` types, so call sites are type-checked against them. Each
is named ``...Label``: the domain has enums of the same facts (``MessageClass``,
``RecipientOutcome``, ``TlsLevel``, ``SuppressionScope``...), and a label type is what a
metric shows of one, not the fact itself.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Literal, get_args

from phigate.phi_scanner.findings import HEALTH_CATEGORIES, IDENTIFIER_CATEGORIES

log = logging.getLogger(__name__)

OTHER = "other"

#: What the SMTP server did with a message at the end of DATA.
ReceivedResultLabel = Literal["accepted", "quarantined", "held", "rejected", "tempfailed"]
#: A recipient's state change: ``deferred`` each time, the others once (final states).
RecipientOutcomeLabel = Literal["delivered", "deferred", "bounced", "expired", "cancelled"]
MessageClassLabel = Literal["treatment", "operations", "marketing"]
#: One delivery attempt (one SMTP transaction for one or more recipients at one host).
#: ``tls_policy``: the next hop could not meet the TLS level the message needs, nothing sent.
AttemptOutcomeLabel = Literal["success", "temporary_failure", "permanent_failure", "tls_policy"]
#: The transport security an attempt actually had.
TlsLevelLabel = Literal["none", "encrypted", "verified"]
FinalOutcomeLabel = Literal["delivered", "bounced", "expired"]
ScanVerdictLabel = Literal["none", "identifiers", "phi"]
PolicyActionLabel = Literal["accept", "tag", "quarantine", "hold", "reject", "tempfail"]
AuthFailureReasonLabel = Literal["bad_credentials", "locked_out", "tls_required", "malformed"]
#: What an AUTH lockout stopped: ``user_ip``, a user name from one client address (refused
#: for a while); ``user``, a user name from every address (slowed by the tarpit, never
#: refused). See :mod:`phigate.mta.submission.auth`.
LockoutKindLabel = Literal["user_ip", "user"]
DirectionLabel = Literal["inbound", "outbound"]
BounceKindLabel = Literal["permanent", "temporary"]
UnsubscribeMethodLabel = Literal["one_click", "mailto"]
SuppressionScopeLabel = Literal["marketing", "all"]
SuppressionReasonLabel = Literal[
    "hard_bounce", "soft_bounces", "complaint", "unsubscribe", "manual"]
ListenerLabel = Literal["submission", "submission_tls", "feedback", "http"]
DkimAlgorithmLabel = Literal["rsa", "ed25519"]
#: Why delivery could not process a message (phigate.mta.delivery.poison.Unprocessable).
UnprocessableReasonLabel = Literal[
    "too_big", "malformed", "undecryptable", "dkim", "timeout", "processing_error"]
CertificateLabel = Literal["submission", "http", "client"]
#: The TLS policy a delivery session ran under (phigate.mta.delivery.secure.TlsPolicy).
TlsPolicyLabel = Literal["none", "opportunistic", "required", "verify", "mta-sts", "dane"]
#: How a session went: ``success`` or an RFC 8460 result type (no names, no addresses).
TlsSessionResultLabel = Literal[
    "success", "starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
    "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
    "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid"]

#: The scanner's own category constants (PERSON, CONDITION, ...): a fixed set.
SCAN_CATEGORIES = IDENTIFIER_CATEGORIES | HEALTH_CATEGORIES
#: Kinds of feedback report (``phigate_feedback_ignored``).
FEEDBACK_KINDS = frozenset({"bounce", "complaint", "unsubscribe", "other"})
#: Sender-side bounce reasons (policy.feedback.reason_names, ReasonGroup.SENDER): the
#: only label values of ``phigate_bounce_incidents``; never a domain or an address.
INCIDENT_REASONS = frozenset({"blocked", "spamdetected", "authfailure", "requireptr",
                              "badreputation", "securityerror", "rejected",
                              "policyviolation", "toomanyconn", "speeding"})

# Open label sets: names our code defines (policy rule names, queue states).
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_-]{0,47}\Z")
# Campaign ids are set by the admin who approves the campaign; still never an address.
_CAMPAIGN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")


def values_of(literal: object) -> frozenset[str]:
    """The values of a ``Literal`` label type."""
    return frozenset(get_args(literal))


def known(values: Iterable[str]) -> tuple[str, ...]:
    """A fixed set's values to pre-create series for, sorted, ``other`` last."""
    return (*sorted(values), OTHER)


class LabelGuard:
    """Keeps one label's values bounded: a fixed set, or identifier-like values up to a cap."""

    def __init__(
        self,
        name: str,
        *,
        fixed: Iterable[str] | None = None,
        pattern: re.Pattern[str] = _IDENTIFIER,
        cap: int = 64,
    ) -> None:
        self.name = name
        self.fixed = frozenset(fixed) if fixed is not None else None
        self.pattern = pattern
        self.cap = cap
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._warned = False

    @property
    def known(self) -> tuple[str, ...]:
        """The values to pre-create series for (fixed sets only), ``other`` included."""
        return known(self.fixed) if self.fixed is not None else ()

    def __call__(self, value: str) -> str:
        if self.fixed is not None:
            if value in self.fixed:
                return value
            return self._reject()
        if not isinstance(value, str) or not self.pattern.match(value):
            return self._reject()
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) >= self.cap:
                return self._reject()
            self._seen.add(value)
        return value

    def _reject(self) -> str:
        # Only the label's name is logged (the rejected value might be exactly what must not
        # appear anywhere, an address passed by mistake), and only once: a call site that
        # is wrong is wrong for every message.
        if not self._warned:
            self._warned = True
            log.warning("metrics: unexpected value for label %s counted as %r", self.name, OTHER)
        return OTHER


def _fixed(name: str, literal: object) -> LabelGuard:
    return LabelGuard(name, fixed=values_of(literal))


class LabelGuards:
    """One guard per label of one :class:`~phigate.observability.metrics.Metrics`.

    The open sets remember what they have seen (their cap is per registry), so every
    ``Metrics`` has guards of its own.
    """

    def __init__(self) -> None:
        self.received_result = _fixed("result", ReceivedResultLabel)
        self.recipient_outcome = _fixed("outcome", RecipientOutcomeLabel)
        self.message_class = _fixed("class", MessageClassLabel)
        self.attempt_outcome = _fixed("outcome", AttemptOutcomeLabel)
        self.tls_level = _fixed("tls", TlsLevelLabel)
        self.final_outcome = _fixed("outcome", FinalOutcomeLabel)
        self.scan_verdict = _fixed("verdict", ScanVerdictLabel)
        self.policy_action = _fixed("action", PolicyActionLabel)
        self.auth_reason = _fixed("reason", AuthFailureReasonLabel)
        self.lockout_kind = _fixed("kind", LockoutKindLabel)
        self.direction = _fixed("direction", DirectionLabel)
        self.bounce_kind = _fixed("kind", BounceKindLabel)
        self.unsubscribe_method = _fixed("method", UnsubscribeMethodLabel)
        self.suppression_scope = _fixed("scope", SuppressionScopeLabel)
        self.suppression_reason = _fixed("reason", SuppressionReasonLabel)
        self.listener = _fixed("listener", ListenerLabel)
        self.dkim_algorithm = _fixed("algorithm", DkimAlgorithmLabel)
        self.unprocessable_reason = _fixed("reason", UnprocessableReasonLabel)
        self.certificate = _fixed("certificate", CertificateLabel)
        self.tls_policy = _fixed("policy", TlsPolicyLabel)
        self.tls_result = _fixed("result", TlsSessionResultLabel)
        self.scan_category = LabelGuard("category", fixed=SCAN_CATEGORIES)
        self.policy_rule = LabelGuard("rule", cap=64)
        self.state = LabelGuard("state", cap=24)
        self.campaign = LabelGuard("campaign", pattern=_CAMPAIGN_ID, cap=500)
