"""How the feedback listener reads a message: bounce, complaint, unsubscribe or other.

- Complaints: RFC 5965 ARF reports. Feedback types ``abuse``, ``fraud``, ``virus`` and
  ``other`` are complaints; ``auth-failure`` (DMARC/DKIM failure reports) and
  ``not-spam`` are reported as kind ``other`` with their feedback type, because nobody
  asked to stop receiving mail. The report's own DKIM signature is verified and recorded
  as an ``Authentication-Results`` value (authres).
- Unsubscribes: mail to ``unsubscribe+TOKEN@…`` (the mailto: of List-Unsubscribe).
- Bounces: see :mod:`phigate.policy.feedback.bounce`.

Whom it is about, most trustworthy first: the verified token of the address the message
was sent to (VERP ``bounces+TOKEN@``, ``unsubscribe+TOKEN@``), then what the report says
(``Original-Rcpt-To``, DSN recipient fields), then a verified token in the returned
message's ``List-Unsubscribe``, then the returned message's ``To:``. A token is only
believed when its MAC verifies; without a signer, tokens are ignored.
"""

from __future__ import annotations

import email
import logging
import re
from dataclasses import replace
from email import policy
from email.message import Message
from email.utils import getaddresses

from phigate.policy.feedback.arf import (
    ArfReport,
    DnsTxtLookup,
    check_dkim,
    find_arf,
    returned_header_values,
    returned_recipients,
)
from phigate.policy.feedback.bounce import bounced_recipients, is_delivery_report
from phigate.policy.feedback.model import FeedbackRecipient, FeedbackReport
from phigate.policy.feedback.reasons import judge
from phigate.policy.feedback.ses import SesNotification, ses_notification
from phigate.policy.tokens import TokenClaims, TokenSigner, token_in_address

__all__ = ["FeedbackRecipient", "FeedbackReport", "classify"]

COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other"})
_ADDRESSED_HEADERS = ("Delivered-To", "X-Original-To", "To")
_RETURNED_TOKEN = re.compile(r"(?:/u/|unsubscribe\+|bounces\+)([a-z2-7]{16,})", re.IGNORECASE)
_SYSTEM_SENDERS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})

log = logging.getLogger(__name__)


def classify(
    raw: bytes,
    *,
    signer: TokenSigner | None = None,
    envelope_recipient: str | None = None,
    dns: DnsTxtLookup | None = None,
    verify_dkim: bool = True,
    authserv_id: str = "phigate",
) -> FeedbackReport:
    """Read one feedback message. Never raises for odd input: unknown is kind ``other``."""
    # compat32 keeps header values as raw strings; policy.default's address parser raises
    # on some malformed headers (found by fuzzing), and feedback mail is often malformed.
    # It is also what flufl.bounce's detectors expect, so the message is parsed once.
    message = email.message_from_bytes(raw, policy=policy.compat32)
    try:
        return _classify(message, raw, signer=signer, envelope_recipient=envelope_recipient,
                         dns=dns, verify_dkim=verify_dkim, authserv_id=authserv_id)
    except Exception as error:  # the listener must go on; the type says enough
        log.warning("feedback message not understood: %s", type(error).__name__)
        return FeedbackReport("other")


def _classify(
    message: Message,
    raw: bytes,
    *,
    signer: TokenSigner | None,
    envelope_recipient: str | None,
    dns: DnsTxtLookup | None,
    verify_dkim: bool,
    authserv_id: str,
) -> FeedbackReport:
    addressed = _addressed_token(message, envelope_recipient)
    claims = None
    if addressed is not None and signer is not None:
        claims = signer.parse(addressed[1], kind=addressed[0])

    arf = find_arf(message)
    if arf is not None:
        dkim_result = authentication_results = dkim_domain = None
        if verify_dkim:
            dkim_result, authentication_results, dkim_domain = check_dkim(
                raw, authserv_id=authserv_id, dns=dns)
        kind = "complaint" if arf.feedback_type in COMPLAINT_TYPES else "other"
        return FeedbackReport(kind, _complaint_recipients(arf, claims, signer),
                              arf.feedback_type, claims, dkim_result, authentication_results,
                              dkim_domain)

    ses = ses_notification(message)
    if ses is not None:
        return _from_ses(ses, claims)

    if addressed is not None and addressed[0] == "unsubscribe":
        recipients = [FeedbackRecipient(claims.recipient, False)] if claims else []
        return FeedbackReport("unsubscribe", recipients, token=claims)

    found = bounced_recipients(message)
    if claims is not None and claims.kind == "verp":
        found = _attribute_to_verp_recipient(found, claims, message)
    return FeedbackReport("bounce" if found else "other", found, token=claims)


def _addressed_token(message: Message, envelope_recipient: str | None) -> tuple[str, str] | None:
    if envelope_recipient is not None:
        return token_in_address(envelope_recipient)
    # A file on disk has no envelope: the headers MTAs add say where it was delivered.
    for name in _ADDRESSED_HEADERS:
        for value in message.get_all(name, []):
            for _, address in getaddresses([str(value)]):
                found = token_in_address(address)
                if found is not None:
                    return found
    return None


def _complaint_recipients(arf: ArfReport, claims: TokenClaims | None,
                          signer: TokenSigner | None) -> list[FeedbackRecipient]:
    if claims is not None:
        return [FeedbackRecipient(claims.recipient, False)]
    addresses = arf.original_rcpt_to or _tracked_recipients(arf, signer) or returned_recipients(arf)
    unique = list(dict.fromkeys(addresses))
    return [FeedbackRecipient(address, False) for address in unique]


def _tracked_recipients(arf: ArfReport, signer: TokenSigner | None) -> list[str]:
    """Recipients named by a genuine token in the returned List-Unsubscribe/Return-Path."""
    if signer is None:
        return []
    values = (returned_header_values(arf, "List-Unsubscribe")
              + returned_header_values(arf, "Return-Path"))
    return [claims.recipient for _, claims in returned_tokens(values, signer)]


def returned_tokens(values: list[str], signer: TokenSigner) -> list[tuple[str, TokenClaims]]:
    """(token, claims) of every genuine token in header values of a returned message."""
    found = []
    for value in values:
        for token in _RETURNED_TOKEN.findall(value):
            claims = signer.parse(token)
            if claims is not None:
                found.append((token.lower(), claims))
    return found


def _attribute_to_verp_recipient(found: list[FeedbackRecipient], claims: TokenClaims,
                                 message: Message) -> list[FeedbackRecipient]:
    """A VERP return path names the one recipient the bounced copy went to.

    Addresses in the bounce text may be aliases or forwarding targets of it, so the
    token's recipient is reported with the bounce's verdict. A message to the VERP
    address that no detector understands still counts as a soft bounce when it comes
    from a mail system, and is ignored when it is an auto-reply.
    """
    if not found:
        if not _from_mail_system(message):
            return []
        verdict = judge(text=None)
        return [FeedbackRecipient(claims.recipient, False, verdict.status,
                                  "unrecognised bounce format", verdict.reason.value)]
    same = [r for r in found if r.address.lower() == claims.recipient.lower()]
    basis = (same or [r for r in found if r.permanent] or found)[0]
    return [replace(basis, address=claims.recipient)]


def _from_ses(ses: SesNotification, claims: TokenClaims | None) -> FeedbackReport:
    if ses.kind == "complaint":
        return FeedbackReport("complaint", [FeedbackRecipient(r.address, False)
                                            for r in ses.recipients],
                              ses.feedback_type, claims)
    if ses.kind != "bounce":
        return FeedbackReport("other", token=claims)
    found = []
    for entry in ses.recipients:
        verdict = judge(status=entry.status, text=entry.diagnostic,
                        temporary=True if entry.temporary else None)
        found.append(FeedbackRecipient(
            entry.address, verdict.hard, verdict.status, entry.diagnostic,
            verdict.reason.value, verdict.reply_code, entry.temporary))
    return FeedbackReport("bounce", found, token=claims)


def _from_mail_system(message: Message) -> bool:
    auto = str(message.get("Auto-Submitted", "no")).strip().lower()
    if auto.startswith("auto-replied") or message.get("X-Autoreply") or message.get(
            "X-Autorespond"):
        return False
    if message.get_content_type() == "multipart/report" or is_delivery_report(message):
        return True
    senders = getaddresses([str(value) for value in message.get_all("From", [])])
    return any(address.split("@")[0].lower() in _SYSTEM_SENDERS for _, address in senders)
