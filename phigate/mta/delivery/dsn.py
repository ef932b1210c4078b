"""Delivery status notifications (RFC 3464) for mail phigate could not deliver.

A DSN is a ``multipart/report; report-type=delivery-status`` from the null sender to the
original envelope sender with three parts: a human explanation, the machine-readable
``message/delivery-status`` and the original's header block as ``text/rfc822-headers``.
The original *body* is never returned: it may carry PHI, and the sender has it anyway.

A DSN about PHI mail (``phi=True``) carries only what RFC 3464 needs: our queue id, the
original Message-ID (the only header returned), the recipient we were given, action,
status, and a remote reply reduced to its codes (``smtp; 550 5.1.1``): a Subject, a display
name or a remote server quoting the message may all carry PHI (issue 13 finding 3). The
DSN is queued with the original's PHI verdict, so it leaves only over the TLS the PHI rule
demands, and it comes From our own domain so that it is DKIM-signed.

No DSN is built for a null envelope sender, nor for a message that is itself a report or
an automatic reply (RFC 3464 section 2 / RFC 3834): never bounce a bounce.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.utils import format_datetime, make_msgid

from phigate.mta.delivery.dkim import strip_internal_headers

# Header lines are not refolded (the limit is RFC 5322's hard one): folding puts
# Diagnostic-Code values on a continuation line, which some DSN parsers mishandle.
# The explanation text is wrapped by hand.
_SMTP_POLICY = policy.SMTP.clone(max_line_length=998)


@dataclass(frozen=True)
class FailedRecipient:
    address: str
    status: str  # enhanced status code, "5.1.1"
    remote_mta: str | None
    diagnostic: str  # "smtp; 550 5.1.1 user unknown", or plain text for phigate's own reasons
    action: str = "failed"  # "failed" | "delayed"
    last_attempt: datetime | None = None


def build_dsn(
    *,
    original: bytes,
    envelope_sender: str,
    failed: Sequence[FailedRecipient],
    reporting_mta: str,
    arrival: datetime,
    envelope_id: str | None = None,
    queue_id: str | None = None,
    phi: bool = False,
    from_domain: str | None = None,
    explanation: str | None = None,
    subject: str | None = None,
    extra_fields: Sequence[tuple[str, str]] = (),
) -> bytes | None:
    """The DSN as bytes (CRLF line ends), or None when none may be sent.

    ``from_domain``: the domain of its From (the DKIM signing domain; default the
    reporting MTA's name). ``phi``: the minimal form described in the module docstring.
    ``explanation`` and ``subject`` replace the default human-readable text and Subject;
    ``extra_fields`` are extension fields of the per-message block (RFC 3464 2.4).
    """
    if not failed:
        raise ValueError("build_dsn needs at least one recipient")
    sender = envelope_sender.strip().strip("<>").strip()
    if not sender or _is_report_or_auto_reply(original):
        return None

    delayed_only = all(recipient.action == "delayed" for recipient in failed)
    dsn = EmailMessage(policy=_SMTP_POLICY)
    dsn["From"] = f"Mail Delivery System <MAILER-DAEMON@{from_domain or reporting_mta}>"
    dsn["To"] = sender
    dsn["Subject"] = subject or ("Delayed Mail (still being retried)" if delayed_only
                                 else "Undelivered Mail Returned to Sender")
    dsn["Date"] = format_datetime(datetime.now(UTC))
    dsn["Message-ID"] = make_msgid("dsn", domain=reporting_mta)
    dsn["Auto-Submitted"] = "auto-replied"
    dsn["MIME-Version"] = "1.0"
    dsn.set_type("multipart/report")
    dsn.set_param("report-type", "delivery-status")

    report = _Report(reporting_mta, arrival, envelope_id, queue_id, phi, tuple(extra_fields))
    dsn.attach(_text_part(explanation) if explanation is not None
               else _explanation_part(failed, report, delayed_only))
    dsn.attach(_status_part(failed, report))
    headers = _message_id_part(original) if phi else _headers_part(original)
    if headers is not None:
        dsn.attach(headers)
    return dsn.as_bytes(policy=_SMTP_POLICY)


@dataclass(frozen=True)
class _Report:
    reporting_mta: str
    arrival: datetime
    envelope_id: str | None
    queue_id: str | None
    phi: bool
    extra_fields: tuple[tuple[str, str], ...] = ()


def _is_report_or_auto_reply(original: bytes) -> bool:
    headers = BytesHeaderParser(policy=policy.compat32).parsebytes(original)
    if headers.get_content_type() == "multipart/report":
        return True
    auto = str(headers.get("Auto-Submitted", "no")).strip().lower()
    return not auto.startswith("no")


def _explanation_part(failed: Sequence[FailedRecipient], report: _Report,
                      delayed_only: bool) -> EmailMessage:
    reporting_mta = report.reporting_mta
    if delayed_only:
        lines = [f"This is the mail system at {reporting_mta}.", "",
                 "Your message has not been delivered yet to the recipient(s) below.",
                 "It is still in the queue and delivery will be retried; you do not",
                 "need to send it again.", ""]
    else:
        lines = [f"This is the mail system at {reporting_mta}.", "",
                 "Your message could not be delivered to the recipient(s) below and",
                 "has been given up on. Its headers are attached; its content is not",
                 "returned, because it may contain protected health information.", ""]
    if report.queue_id:
        lines.extend([f"Queue id: {report.queue_id}", ""])
    for recipient in failed:
        lines.extend(textwrap.wrap(f"<{recipient.address}>: {_explain(recipient)}", 72,
                                   subsequent_indent="    ", break_on_hyphens=False))
        if report.phi and _is_remote(recipient):  # no remote host, no reply text
            lines.append(f"    Status: {recipient.status}")
            lines.append("")
            continue
        if recipient.remote_mta and not report.phi:
            lines.append(f"    Receiving server: {recipient.remote_mta}")
        lines.extend(textwrap.wrap(f"Reported reason: {_diagnostic_text(recipient.diagnostic)}",
                                   72, initial_indent="    ", subsequent_indent="      ",
                                   break_on_hyphens=False))
        lines.append("")
    return _text_part("\n".join(lines))


def _text_part(text: str) -> EmailMessage:
    part = EmailMessage(policy=_SMTP_POLICY)
    part.set_content(text, subtype="plain", charset="utf-8")
    del part["MIME-Version"]
    part["Content-Description"] = "Notification"
    return part


# What a practice's staff can act on, by the most specific cause we can tell.
_EXPLANATIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"tls required|starttls|certificate", re.IGNORECASE),
     "the message carries protected health information and may only be sent over an "
     "encrypted, verified connection, which the receiving server could not provide. "
     "It was not sent unencrypted."),
    (re.compile(r"null mx|does not accept mail", re.IGNORECASE),
     "the recipient's domain does not accept email."),
)
_EXPLANATIONS_BY_STATUS = {
    "5.1.1": "the recipient's mailbox does not exist.",
    "5.1.2": "the recipient's domain does not exist.",
    "5.1.10": "the recipient's domain does not accept email.",
    "5.2.2": "the recipient's mailbox is full.",
    "4.2.2": "the recipient's mailbox is full.",
    "5.3.4": "the message is larger than the receiving server accepts.",
    "5.4.7": "delivery kept failing until the message's time in the queue ran out.",
    "4.4.7": "delivery kept failing until the message's time in the queue ran out.",
}


def _explain(recipient: FailedRecipient) -> str:
    for pattern, text in _EXPLANATIONS:
        if pattern.search(recipient.diagnostic):
            return text
    if recipient.status in _EXPLANATIONS_BY_STATUS:
        return _EXPLANATIONS_BY_STATUS[recipient.status]
    if recipient.status.startswith("5.7"):
        return "the receiving server refused the message for policy reasons."
    if recipient.action == "delayed" or recipient.status.startswith("4"):
        return "a temporary problem prevented delivery."
    return "the receiving server refused the message."


def _diagnostic_text(diagnostic: str) -> str:
    kind, sep, text = diagnostic.partition(";")
    return text.strip() if sep and kind.strip().isalnum() else diagnostic.strip()


def _status_part(failed: Sequence[FailedRecipient], report: _Report) -> EmailMessage:
    per_message = EmailMessage(policy=_SMTP_POLICY)
    per_message["Reporting-MTA"] = f"dns; {report.reporting_mta}"
    if report.envelope_id:
        per_message["Original-Envelope-Id"] = report.envelope_id
    if report.queue_id:
        per_message["X-Phigate-Queue-Id"] = report.queue_id  # an extension field (3464 2.4)
    for name, value in report.extra_fields:
        per_message[name] = value
    per_message["Arrival-Date"] = format_datetime(_aware(report.arrival))
    blocks: list[Message | str] = [per_message]
    for recipient in failed:
        block = EmailMessage(policy=_SMTP_POLICY)
        block["Final-Recipient"] = f"rfc822; {recipient.address}"
        block["Action"] = recipient.action
        block["Status"] = recipient.status
        if recipient.remote_mta and not report.phi:
            block["Remote-MTA"] = f"dns; {recipient.remote_mta}"
        block["Diagnostic-Code"] = (reduced_diagnostic(recipient) if report.phi
                                    else _diagnostic_code(recipient.diagnostic))
        if recipient.last_attempt is not None:
            block["Last-Attempt-Date"] = format_datetime(_aware(recipient.last_attempt))
        blocks.append(block)
    part = EmailMessage(policy=_SMTP_POLICY)
    part["Content-Type"] = "message/delivery-status"
    part["Content-Description"] = "Delivery report"
    # A list payload of header blocks is what the generator and parser use for this type.
    part.set_payload(blocks)
    return part


def _diagnostic_code(diagnostic: str) -> str:
    # RFC 3464: "diagnostic-type; text". Our own reasons (TLS policy, DNS) are not SMTP.
    kind, sep, _ = diagnostic.partition(";")
    one_line = " ".join(diagnostic.split())
    if sep and kind.strip().replace("-", "").isalnum():
        return one_line
    return f"X-Phigate; {one_line}"


_SMTP_REPLY = re.compile(r"\s*(\d{3})(?:[ -]+([245]\.\d{1,3}\.\d{1,3})\b)?")


def reduced_diagnostic(recipient: FailedRecipient) -> str:
    """The diagnostic without any text a remote server wrote: ``smtp; 550 5.1.1``.

    Our own reasons (TLS policy, DNS, expiry: fixed phrases and host names, never
    content) are kept as they are.
    """
    if not _is_remote(recipient):
        return _diagnostic_code(recipient.diagnostic)
    _kind, _sep, text = recipient.diagnostic.partition(";")
    match = _SMTP_REPLY.match(text)
    if match is None:
        return f"smtp; {recipient.status}"
    code, enhanced = match.group(1), match.group(2)
    return f"smtp; {code} {enhanced}" if enhanced else f"smtp; {code}"


def _is_remote(recipient: FailedRecipient) -> bool:
    kind, sep, _text = recipient.diagnostic.partition(";")
    return bool(sep) and kind.strip().lower() == "smtp"


def _message_id_part(original: bytes) -> EmailMessage | None:
    """The original's Message-ID as the only returned header (None when it has none)."""
    headers = BytesHeaderParser(policy=policy.compat32).parsebytes(original)
    message_id = " ".join(str(headers.get("Message-ID", "")).split())
    if not re.fullmatch(r"<[^<>\s]{1,250}>", message_id):
        return None
    part = EmailMessage(policy=_SMTP_POLICY)
    part.set_content(f"Message-ID: {message_id}\n", subtype="rfc822-headers", charset="utf-8")
    del part["MIME-Version"]
    part["Content-Description"] = "Message-ID of the undelivered message"
    return part


def _headers_part(original: bytes) -> EmailMessage:
    stripped = strip_internal_headers(original)
    match = re.search(rb"\r?\n\r?\n", stripped)
    head = stripped[: match.start()] if match else stripped
    text = head.decode("utf-8", errors="replace").replace("\r\n", "\n")
    part = EmailMessage(policy=_SMTP_POLICY)
    part.set_content(text + "\n", subtype="rfc822-headers", charset="utf-8")
    del part["MIME-Version"]
    part["Content-Description"] = "Headers of the undelivered message"
    return part


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
