"""RFC 5965 abuse reports (ARF): feedback type, recipients, and the report's DKIM result."""

from __future__ import annotations

import email
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.utils import getaddresses

import authres
import dkim
import dkim.dnsplug
import dkim.util

#: dkimpy's DNS hook: ``(name: bytes with trailing dot, timeout=…) -> TXT bytes | None``.
DnsTxtLookup = Callable[..., bytes | None]


@dataclass(frozen=True)
class ArfReport:
    feedback_type: str
    #: Original-Rcpt-To values, in order.
    original_rcpt_to: list[str] = field(default_factory=list)
    #: Header block of the returned message (message/rfc822 or text/rfc822-headers).
    returned_headers: Message | None = None


def find_arf(message: Message) -> ArfReport | None:
    """The ARF report in ``message``, or None if it is not one."""
    report_fields: Message | None = None
    returned: Message | None = None
    feedback_report = "feedback-report" in str(message.get("Content-Type", "")).lower()
    for part in _top_level_parts(message):
        content_type = part.get_content_type()
        if report_fields is None and (content_type == "message/feedback-report" or (
                content_type == "text/plain" and _report_fields(part, strict=not
                                                                feedback_report))):
            report_fields = _header_block(part)
        elif content_type in ("message/rfc822", "text/rfc822-headers") and returned is None:
            returned = _header_block(part)
    if report_fields is None:
        return _informal_report(message, returned)
    feedback_type = " ".join(str(report_fields.get("Feedback-Type", "")).split()).lower()
    recipients = [address for _, address in getaddresses(
        [str(value) for value in report_fields.get_all("Original-Rcpt-To", [])]) if address]
    return ArfReport(feedback_type or "unknown", recipients, returned)


_FEEDBACK_TYPE_LINE = re.compile(r"^\s*feedback-type\s*:", re.IGNORECASE | re.MULTILINE)
_INFORMAL_SUBJECT = re.compile(r"complaint about message from", re.IGNORECASE)
_INFORMAL_TEXT = re.compile(r"this is an? (e-?mail )?abuse (report|complaint)|abuse complaint "
                            r"regarding|complaint about (a |the )?message (from|received)",
                            re.IGNORECASE)


_VERSION_LINE = re.compile(r"^\s*(version|user-agent)\s*:", re.IGNORECASE | re.MULTILINE)


def _report_fields(part: Message, *, strict: bool = False) -> bool:
    """A report part declared as text/plain (some generators do) that holds the fields.
    Without ``report-type=feedback-report`` on the message (``strict``), the part must also
    carry RFC 5965's other required fields (Version:, User-Agent:) at the start of a line:
    "Feedback-Type:" alone may be quoted prose."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return False
    head = payload[:2000].decode("utf-8", "replace")
    return bool(_FEEDBACK_TYPE_LINE.search(head)) and (
        not strict or bool(_VERSION_LINE.search(head)))


def _informal_report(message: Message, returned: Message | None) -> ArfReport | None:
    """Complaints sent in the shape some large feedback loops use instead of RFC 5965: the
    complained-of message attached, and either Microsoft's JMRP marker in it
    (``X-HmXmrOriginalRecipient``: the complainer) or a notice saying it is an abuse report
    ("complaint about message from 192.0.2.1", "This is an email abuse report ...")."""
    if returned is None:
        return None
    marked = [address for _, address in getaddresses(
        [str(v) for v in returned.get_all("X-HmXmrOriginalRecipient", [])]) if "@" in address]
    if marked:
        return ArfReport("abuse", marked, returned)
    if _INFORMAL_SUBJECT.search(str(message.get("Subject", ""))) or any(
            _INFORMAL_TEXT.search(text[:2000]) for text in _plain_texts(message)):
        return ArfReport("abuse", [], returned)
    return None


def _plain_texts(message: Message) -> list[str]:
    texts = []
    for part in _top_level_parts(message):
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                texts.append(payload.decode("utf-8", "replace"))
    return texts


def returned_recipients(report: ArfReport) -> list[str]:
    """Addresses in the returned message's To: (the complainer, when nothing better says)."""
    if report.returned_headers is None:
        return []
    values = [str(value) for value in report.returned_headers.get_all("To", [])]
    return [address for _, address in getaddresses(values) if "@" in address]


def returned_header_values(report: ArfReport, name: str) -> list[str]:
    if report.returned_headers is None:
        return []
    return [str(value) for value in report.returned_headers.get_all(name, [])]


def check_dkim(raw: bytes, *, authserv_id: str,
               dns: DnsTxtLookup | None = None) -> tuple[str, str, str | None]:
    """Verify the report's DKIM signatures: (result, Authentication-Results header value,
    the d= domain of the passing signature).

    ``pass`` when any signature verifies (the first passing one is recorded), otherwise
    the most telling failure. Reports are often forwarded by feedback-loop services, so
    several signatures are common.
    """
    verifier = dkim.DKIM(raw)
    signatures = [value for name, value in verifier.headers if name.lower() == b"dkim-signature"]
    if not signatures:
        return ("none", _authres_value(authserv_id, [authres.NoneAuthenticationResult()]),
                None)
    results = []
    for index, signature in enumerate(signatures):
        outcome, comment = _verify_one(verifier, index, dns)
        try:
            tags = dkim.util.parse_tag_value(signature)
        except dkim.util.InvalidTagValueList:
            tags = {}
        result = authres.DKIMAuthenticationResult(
            result=outcome,
            result_comment=comment,
            header_d=_tag(tags, b"d"),
            header_s=_tag(tags, b"s"),
            header_a=_tag(tags, b"a"),
        )
        results.append((outcome, result))
        if outcome == "pass":
            return "pass", _authres_value(authserv_id, [result]), _tag(tags, b"d")
    order = ("fail", "permerror", "temperror", "neutral")
    overall = min((outcome for outcome, _ in results), key=order.index)
    return overall, _authres_value(authserv_id, [result for _, result in results]), None


def _verify_one(verifier: dkim.DKIM, index: int,
                dns: DnsTxtLookup | None) -> tuple[str, str | None]:
    lookup = dns or dkim.dnsplug.get_txt
    answers: list[bytes | None] = []
    lookup_failed: list[BaseException] = []

    # dkimpy turns a missing key and a DNS timeout into plain False; watch the lookup
    # to tell them apart.
    def recording_lookup(name: bytes, timeout: int = 5) -> bytes | None:
        try:
            answer = lookup(name, timeout=timeout)
        except Exception as error:
            lookup_failed.append(error)
            raise
        answers.append(answer)
        return answer

    try:
        ok = verifier.verify(idx=index, dnsfunc=recording_lookup)
    except dkim.MessageFormatError:
        return "permerror", "malformed signature"
    except dkim.ValidationError:
        return "fail", "signature did not verify"
    except dkim.DKIMException:
        return "fail", None
    except OSError:  # DNS or socket trouble: worth trying again later
        return "temperror", "DNS lookup failed"
    if ok:
        return "pass", None
    if lookup_failed:
        return "temperror", "DNS lookup failed"
    if not answers or answers[-1] is None:
        return "permerror", "no key published"
    return "fail", "signature did not verify"


def _tag(tags: dict[bytes, bytes], name: bytes) -> str | None:
    value = tags.get(name)
    return value.decode("ascii", "replace").strip() if value else None


def _authres_value(authserv_id: str, results: list[object]) -> str:
    header = str(authres.AuthenticationResultsHeader(authserv_id=authserv_id, results=results))
    return header.split(":", 1)[1].strip()


def _top_level_parts(message: Message) -> Iterator[Message]:
    if message.get_content_maintype() != "multipart" or not message.is_multipart():
        return
    for part in message.get_payload():
        if not isinstance(part, Message):
            continue
        if part.get_content_maintype() == "multipart":
            yield from _top_level_parts(part)
        else:
            yield part


def _header_block(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    text = part.get_payload(decode=True)
    if isinstance(text, bytes):
        return email.message_from_bytes(text, policy=policy.compat32)
    return None
