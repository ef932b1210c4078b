"""MIME message to text segments: subject, body parts and readable attachments.

Each segment is named by its ``part`` (``subject``, ``body``, ``body[2]``, ``attachment:1``...)
and the findings' offsets point into the segment's text. What cannot be read becomes a note,
never an exception: the caller decides (fail closed) what an unscannable part means.
Notes never contain content or file names, which may themselves be PHI.
"""

from __future__ import annotations

import io
import logging
import re
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import EmailPolicy
from typing import Any

from phigate.phi_scanner.html_text import html_to_text

IMAGE_NOTE = "image attachment (possible full-face photo or scanned document)"

TEXT_SUBTYPES = {"plain", "csv", "calendar", "vcard", "x-vcard", "tab-separated-values",
                 "markdown", "rtf", "xml"}
TEXT_EXTENSIONS = (".txt", ".csv", ".ics", ".vcf", ".tsv", ".md", ".xml", ".log")
HTML_EXTENSIONS = (".html", ".htm")
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Segment:
    part: str
    text: str


@dataclass
class Extraction:
    segments: list[Segment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    total_chars: int = 0


@dataclass(frozen=True)
class Limits:
    max_text_chars: int = 2 * 1024 * 1024
    #: Wall-clock budget for extraction (PDF parsing can be slow on hostile files).
    max_seconds: float = 20.0
    max_pdf_pages: int = 200
    max_parts: int = 200


# RFC 2045 tokens, without RFC 2231's markers (``*``, ``'``, ``%``): the header parser reads
# those as parts of an extended parameter.
_TOKEN = r"[!#$&+\-.^_`|~0-9A-Za-z]+"  # noqa: S105 - not a password
_QUOTED = r'"[\t !#-\[\]-~]+"'  # printable ASCII, no quoted pair; empty is read apart
_PARAMETER = rf"; *({_TOKEN})=({_TOKEN}|{_QUOTED}) *"
_PARAMETERS = rf"(?:; *{_TOKEN}=(?:{_TOKEN}|{_QUOTED}) *)*"
#: Per MIME header the scanner reads (the parser reads them to split the parts), the values
#: whose header object's text :func:`header_text` writes without the header parser: a type
#: and parameters, without comments, quoted pairs, RFC 2231 or RFC 2047 parameters or
#: anything else the parser decodes or repairs. tests/phi_scanner/test_mime_headers.py holds
#: the default policy to it.
SIMPLE_HEADER_VALUES: dict[str, re.Pattern[str]] = {
    "subject": re.compile(r"[\t -~]*"),  # unstructured: the text as it is, unfolded
    "content-type": re.compile(rf"({_TOKEN}/{_TOKEN})({_PARAMETERS})"),
    "content-disposition": re.compile(rf"({_TOKEN})({_PARAMETERS})"),
    "content-transfer-encoding": re.compile(_TOKEN),
}
_PARAMETER_PATTERN = re.compile(_PARAMETER)


def header_text(name: str, value: str) -> str | None:
    """The text of the header object ``email.policy.default`` makes of ``value`` (what the
    email package reads from it), for the simple values of :data:`SIMPLE_HEADER_VALUES`;
    ``None`` for the others, which need the header parser."""
    pattern = SIMPLE_HEADER_VALUES.get(name.lower())
    if pattern is None:
        return None
    unfolded = value.replace("\r", "").replace("\n", "")  # what header_fetch_parse removes
    match = pattern.fullmatch(unfolded)
    if match is None or "=?" in unfolded:
        return None
    if match.lastindex is None or not match.group(2):
        return unfolded
    # The parser writes the parameters again: "; " between them, each value quoted.
    parameters = _PARAMETER_PATTERN.findall(match.group(2))
    if len({key.lower() for key, _ in parameters}) < len(parameters):
        return None  # the parser drops a repeated one
    written = "; ".join(f'{key}="{given[1:-1] if given[0] == chr(34) else given}"'
                        for key, given in parameters)
    return f"{match.group(1)}; {written}"


class _OneMessagePolicy(EmailPolicy):
    """``email.policy.default`` that builds header objects only where they change the text,
    and each of those once per message.

    The default policy parses a header again on every read, and the parser and the part
    accessors read Content-Type some twenty times per part: that was most of a scan's CPU
    on a short message (issue 16). Even parsed once, a header object costs ~0.1 ms, and the
    email package's code this module runs (the parser, the parameter and payload accessors,
    the content manager's text getter) reads every one of them only as a string: for a
    simple value that string is written directly (:func:`header_text`). One instance per
    message, so nothing outlives it; each header's text is looked up there after its first
    read.
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        object.__setattr__(self, "_parsed", {})  # policies are read-only after __init__

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if not isinstance(value, str) or hasattr(value, "name"):
            return super().header_fetch_parse(name, value)  # a header object already
        # A header object is a str too: either way, what is read is its text.
        read: dict[tuple[str, str], str] = self._parsed  # type: ignore[attr-defined]
        text = read.get((name, value))
        if text is None:
            text = header_text(name, value)
            if text is None:
                text = super().header_fetch_parse(name, value)
            read[(name, value)] = text
        return text


def extract_message(raw: bytes, limits: Limits) -> Extraction:
    message = BytesParser(policy=_OneMessagePolicy()).parsebytes(raw)
    assert isinstance(message, EmailMessage)  # noqa: S101 - an EmailPolicy guarantees it
    extraction = Extraction()
    deadline = time.monotonic() + limits.max_seconds
    subject = message.get("Subject")
    if subject:
        _add(extraction, "subject", str(subject), limits)
    body_count = attachment_count = 0
    for index, part in enumerate(message.walk()):
        if index >= limits.max_parts:
            extraction.notes.append("unscannable: too many MIME parts")
            break
        if part.is_multipart():
            continue
        if time.monotonic() > deadline:
            extraction.notes.append("unscannable: extraction time limit reached")
            break
        if extraction.total_chars >= limits.max_text_chars:
            extraction.notes.append("unscannable: text size limit reached")
            break
        is_attachment = part.get_content_disposition() == "attachment" or bool(
            part.get_filename())
        if is_attachment:
            attachment_count += 1
            name = f"attachment:{attachment_count}"
        else:
            body_count += 1
            name = "body" if body_count == 1 else f"body[{body_count}]"
        _extract_part(extraction, part, name, is_attachment, limits)
    return extraction


def _add(extraction: Extraction, name: str, text: str, limits: Limits) -> None:
    room = limits.max_text_chars - extraction.total_chars
    if len(text) > room:
        text = text[:room]
        extraction.notes.append("unscannable: text size limit reached")
    if text.strip():
        extraction.segments.append(Segment(name, text))
        extraction.total_chars += len(text)


def _extract_part(extraction: Extraction, part: EmailMessage, name: str, is_attachment: bool,
                  limits: Limits) -> None:
    content_type = part.get_content_type()
    maintype, subtype = content_type.split("/", 1)
    filename = (part.get_filename() or "").lower()
    try:
        if maintype == "image":
            extraction.notes.append(IMAGE_NOTE)
        elif content_type == "text/html" or filename.endswith(HTML_EXTENSIONS):
            _add(extraction, name, html_to_text(_decoded_text(part)), limits)
        elif (maintype == "text" and (not is_attachment or subtype in TEXT_SUBTYPES)) or (
                filename.endswith(TEXT_EXTENSIONS)):
            _add(extraction, name, _decoded_text(part), limits)
        elif content_type == "application/pdf" or filename.endswith(".pdf"):
            _add(extraction, name, _pdf_text(_payload(part), limits), limits)
        elif content_type == DOCX_TYPE or filename.endswith(".docx"):
            _add(extraction, name, _docx_text(_payload(part)), limits)
        elif content_type in ("application/pkcs7-mime", "application/pgp-encrypted",
                              "application/x-pkcs7-mime") or subtype == "encrypted":
            extraction.notes.append(f"unscannable: encrypted part ({name})")
        elif maintype in ("audio", "video"):
            extraction.notes.append(f"unscannable: {maintype} attachment ({name})")
        elif content_type == "application/pgp-signature" or subtype == "pkcs7-signature":
            pass  # a signature carries no content of its own
        else:
            extraction.notes.append(f"unscannable: unsupported attachment type "
                                    f"{content_type} ({name})")
    except _Unreadable as error:
        extraction.notes.append(f"unscannable: {error} ({name})")
    except Exception as error:
        # Library parsers raise many exception types on hostile input; all mean unreadable.
        logger.info("part unreadable part=%s error=%s", name, type(error).__name__)
        extraction.notes.append(f"unscannable: unreadable {content_type} ({name})")


class _Unreadable(Exception):
    pass


def _payload(part: EmailMessage) -> bytes:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raise _Unreadable("undecodable payload")
    return payload


def _decoded_text(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, KeyError):
        # Unknown or wrong charset: fall back to a lenient decode rather than skip the part.
        return _payload(part).decode("utf-8", errors="replace")
    if isinstance(content, bytes):
        return content.decode("utf-8", errors="replace")
    return str(content)


def _pdf_text(data: bytes, limits: Limits) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        raise _Unreadable("encrypted PDF")
    pages = []
    for page_number, page in enumerate(reader.pages):
        if page_number >= limits.max_pdf_pages:
            raise _Unreadable("PDF page limit reached")
        pages.append(page.extract_text() or "")
    text = "\n".join(pages)
    if not text.strip():
        # No text layer: a scan. Treated like an image we cannot read.
        raise _Unreadable("PDF without a text layer (scanned document?)")
    return text


def _docx_text(data: bytes) -> str:
    import docx

    document = docx.Document(io.BytesIO(data))
    lines = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            lines.append("\t".join(cell.text for cell in row.cells))
    return "\n".join(lines)
