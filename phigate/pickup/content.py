"""What the pickup page shows of a stored message: headers, text, sanitised HTML and the
attachments, read from the sealed body only after the recipient proved the address.

The HTML goes through nh3 (Rust's ammonia) with a short allow-list: no images, no styles,
no scripts, no forms, links only to https/mailto with ``rel="noopener noreferrer"``, so
nothing in it loads from anywhere; the page's CSP (``default-src 'none'``) backs this up.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage, Message
from email.policy import default

import nh3

#: Header the practice sets per message to ask a second factor: ``LABEL; ANSWER``, e.g.
#: ``X-Phigate-Pickup-Verify: Date of birth (YYYY-MM-DD); 1980-04-02``. Stripped on the way out.
VERIFY_HEADER = "X-Phigate-Pickup-Verify"
SHOWN_HEADERS = ("From", "To", "Cc", "Date", "Subject")
SAFE_TYPES = {"application/pdf", "image/png", "image/jpeg", "image/gif", "text/plain",
              "text/csv"}
_TAGS = {"a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "div", "dl", "dt",
         "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "li", "ol", "p", "pre", "s",
         "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th",
         "thead", "tr", "u", "ul"}


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Shown:
    headers: list[tuple[str, str]]
    text: str
    html: str
    attachments: list[Attachment] = field(default_factory=list)
    message_id: str | None = None
    subject: str = ""


def parse(raw: bytes) -> Shown:
    message = message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)  # noqa: S101 - policy=default gives EmailMessage
    headers = [(name, str(message[name])) for name in SHOWN_HEADERS if message[name]]
    text, html = "", ""
    attachments: list[Attachment] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        ctype = part.get_content_type()
        if disposition == "attachment" or (part.get_filename() and disposition != "inline"):
            attachments.append(_attachment(part, len(attachments)))
        elif ctype == "text/plain" and not text:
            text = _text(part)
        elif ctype == "text/html" and not html:
            html = sanitise(_text(part))
    return Shown(headers, text, html, attachments, message_id=message["Message-ID"],
                 subject=str(message["Subject"] or ""))


def sanitise(markup: str) -> str:
    return nh3.clean(markup, tags=_TAGS, attributes={"a": {"href", "title"}, "td": {"colspan"},
                                                     "th": {"colspan"}},
                     url_schemes={"https", "mailto"}, link_rel="noopener noreferrer",
                     strip_comments=True)


def second_factor(raw: bytes) -> tuple[str, str] | None:
    """(label, answer) from the practice's verify header, or None."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    message = message_from_bytes(head + b"\r\n\r\n", policy=default)
    value = message[VERIFY_HEADER]
    if value is None:
        return None
    label, sep, answer = str(value).rpartition(";")
    if not sep or not label.strip() or not answer.strip():
        return None
    return label.strip()[:120], answer.strip()


def answer_matches(expected: str, given: str) -> bool:
    import hmac

    return hmac.compare_digest(_normal(expected).encode(), _normal(given).encode())


def safe_type(content_type: str) -> str:
    if content_type in SAFE_TYPES:
        return content_type + ("; charset=utf-8" if content_type.startswith("text/") else "")
    return "application/octet-stream"


def safe_filename(name: str, index: int) -> str:
    cleaned = unicodedata.normalize("NFKC", name)
    cleaned = re.sub(r"[^A-Za-z0-9._ -]", "_", cleaned).strip(" .")[:100]
    return cleaned or f"attachment-{index + 1}"


def _attachment(part: Message, index: int) -> Attachment:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    return Attachment(safe_filename(part.get_filename() or "", index), part.get_content_type(),
                      data)


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def _normal(value: str) -> str:
    return re.sub(r"[\s./-]", "", unicodedata.normalize("NFKC", value)).casefold()
