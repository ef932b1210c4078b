"""The header block of a message, split in one bounded, linear pass.

Shared by both directions: submission splits and checks it before ``250``, and delivery
checks a stored message against the same :class:`HeaderLimits` before DKIM signing
(:mod:`phigate.mta.delivery.poison`), so neither imports the other.

Python's ``email`` parser is lenient (it repairs what it cannot read, and records a defect)
and some of its header parsing is super-linear: a 64 KB folded display name took seconds.
Submission instead splits the header block itself, once, under explicit limits, and refuses
what it cannot read unambiguously. Each limit is checked as the pass goes, so the work is
bounded by the limits, not by what the client sent.

The input's line endings are CRLF only (submission refuses bare CR and LF before this).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from phigate.mta.submission.refusals import Refusal, RefusalReason

#: RFC 5322 ``ftext``: printable US-ASCII except the colon.
_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")
#: A continuation line that a lenient reader could take for a From field of its own.
_FROM_LIKE_CONTINUATION = re.compile(rb"[ \t]+from[ \t]*:", re.IGNORECASE)
_CRLF = b"\r\n"


@dataclass(frozen=True)
class HeaderLimits:
    """Explicit bounds on the header block (defaults are generous for real mail)."""

    #: The whole header block, up to and including the blank line.
    max_block_bytes: int = 256 * 1024
    #: Physical lines in the header block (continuation lines included).
    max_lines: int = 4000
    #: One field with all its folded lines.
    max_field_bytes: int = 32 * 1024
    #: Mailboxes in one address field (From, To, Cc, Reply-To, Resent-*).
    max_addresses: int = 1000


@dataclass(frozen=True)
class HeaderField:
    """One field as the client wrote it."""

    name: str
    #: Every physical line of the field, line endings included (the exact bytes).
    raw: bytes

    @cached_property
    def key(self) -> str:
        # Computed once: DATA's checks look fields up by name a dozen times per message.
        return self.name.lower()

    @property
    def value(self) -> str:
        """The unfolded value, without the leading and trailing white space."""
        colon = self.raw.find(b":")
        return self.raw[colon + 1:].replace(_CRLF, b"").strip(b" \t").decode("utf-8", "replace")


@dataclass(frozen=True)
class HeaderBlock:
    fields: tuple[HeaderField, ...]
    #: Offset just past the last field's line ending (the blank line, if any, starts here).
    block_end: int
    #: Offset in the message where the body starts (after the blank line), or its length.
    body_offset: int

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [f.value for f in self.fields if f.key == key]

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        return values[0] if values else None

    def has(self, name: str) -> bool:
        key = name.lower()
        return any(f.key == key for f in self.fields)

    def keys(self) -> list[str]:
        return [f.name for f in self.fields]


def header_block_end(content: bytes, limits: HeaderLimits) -> int | Refusal:
    """Offset just past the header block's last line (before the blank line)."""
    if content.startswith(_CRLF):
        return 0
    end = content.find(b"\r\n\r\n", 0, limits.max_block_bytes + 4)
    if end >= 0:
        return end + 2
    if len(content) > limits.max_block_bytes:
        return Refusal(RefusalReason.HEADER_TOO_LARGE)
    return len(content)


def split_header_block(content: bytes, limits: HeaderLimits | None = None
                       ) -> HeaderBlock | Refusal:
    """The fields of ``content``'s header block, or why it cannot be read safely."""
    limits = limits or HeaderLimits()
    end = header_block_end(content, limits)
    if isinstance(end, Refusal):
        return end
    fields: list[HeaderField] = []
    current: list[bytes] = []
    current_name = ""
    current_size = 0
    from_like = 0
    invalid: Refusal | None = None
    position, lines = 0, 0
    while position < end:
        next_position = content.find(_CRLF, position, end) + 2
        if next_position < 2:  # unreachable with CRLF-only input; be safe anyway
            next_position = end
        line = content[position:next_position]
        lines += 1
        if lines > limits.max_lines:
            return Refusal(RefusalReason.TOO_MANY_HEADER_LINES)
        if line[:1] in (b" ", b"\t"):
            if not current:
                return Refusal(RefusalReason.LEADING_CONTINUATION)
            current_size += len(line)
            if current_size > limits.max_field_bytes:
                return Refusal(RefusalReason.HEADER_FIELD_TOO_LONG)
            if _FROM_LIKE_CONTINUATION.match(line):
                from_like += 1
            current.append(line)
            position = next_position
            continue
        if current:
            fields.append(HeaderField(current_name, b"".join(current)))
        refusal = _field_start_refusal(line, content, next_position, end)
        if refusal is not None:
            return refusal
        colon = line.find(b":")
        name = line[:colon]
        if name.strip(b" \t").lower() == b"from":
            from_like += 1
        if invalid is None:
            invalid = _name_refusal(name)
        if len(line) > limits.max_field_bytes:
            return Refusal(RefusalReason.HEADER_FIELD_TOO_LONG)
        current, current_name, current_size = [line], name.decode("ascii", "replace"), len(line)
        position = next_position
    if current:
        fields.append(HeaderField(current_name, b"".join(current)))
    if from_like > 1:
        return Refusal(RefusalReason.SEVERAL_FROM)
    if invalid is not None:
        return invalid
    body_offset = end + 2 if end < len(content) else end
    return HeaderBlock(tuple(fields), end, body_offset)


def _field_start_refusal(line: bytes, content: bytes, after: int, end: int) -> Refusal | None:
    """Why a line that is not a continuation cannot start a field (None if it can)."""
    colon = line.find(b":")
    if line.startswith(b"From ") and (colon < 0 or line[:colon].rstrip(b" \t") != b"From"):
        return Refusal(RefusalReason.MBOX_FROM_LINE)
    if colon > 0:
        return None
    # No field name: either a stray line inside the header block, or the body itself,
    # because the client left out the blank line. If no field follows, it is the latter.
    if _has_field_line(content, after, end):
        return Refusal(RefusalReason.NOT_A_HEADER_LINE)
    return Refusal(RefusalReason.NO_BLANK_LINE)


def _has_field_line(content: bytes, start: int, end: int) -> bool:
    position = start
    while position < end:
        next_position = content.find(_CRLF, position, end) + 2
        if next_position < 2:
            return False
        line = content[position:next_position]
        colon = line.find(b":")
        if colon > 0 and _FIELD_NAME.fullmatch(line, 0, colon):
            return True
        position = next_position
    return False


def _name_refusal(name: bytes) -> Refusal | None:
    if _FIELD_NAME.fullmatch(name):
        return None
    if name.strip(b" \t") != name and _FIELD_NAME.fullmatch(name.strip(b" \t")):
        return Refusal(RefusalReason.SPACE_IN_FIELD_NAME)
    return Refusal(RefusalReason.BAD_FIELD_NAME)
