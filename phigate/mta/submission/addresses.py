"""Address fields of a submitted header, read in one linear pass, strictly.

The point is that phigate and the recipient's mail reader agree on who a message is from.
Where a reader could see a different address than the one phigate checked (an address in a
display name or a comment, two angle-addrs, a route, text after the angle-addr), the field
is refused instead of repaired. The input is bounded by the field-length limit, and each
character is looked at a bounded number of times.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from phigate.mta.submission.refusals import Refusal, RefusalReason

_SPECIAL = re.compile(r'["()<>,:;\\]')
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,40})\?([bBqQ])\?([^?\s]*)\?=")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
#: What a mail reader may show as (or what looks like) an at sign.
_AT_SIGNS = ("@", "\uff20", "\ufe6b")


@dataclass(frozen=True)
class Mailbox:
    #: The addr-spec as written, without angle brackets.
    address: str
    #: Display name and comments, encoded words decoded (what a reader may show).
    display: str


@dataclass
class _Pending:
    outside: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    angle: list[str] | None = None
    angle_done: bool = False

    def empty(self) -> bool:
        text = "".join(self.outside).strip()
        return not text and self.angle is None and not self.comments


class _BadAddress(Exception):
    pass


class _Reader:
    """A mailbox-list (or address-list, with groups) reader over one field value."""

    def __init__(self, value: str, *, max_addresses: int, groups: bool) -> None:
        self.value = value
        self.max_addresses = max_addresses
        self.groups = groups
        self.mailboxes: list[Mailbox] = []
        self.pending = _Pending()
        self.in_group = False
        self.in_angle = False

    def read(self) -> list[Mailbox]:
        value, position = self.value, 0
        while position < len(value):
            match = _SPECIAL.search(value, position)
            stop = match.start() if match else len(value)
            if stop > position:
                self._text(value[position:stop])
            if match is None:
                break
            position = self._special(match.group(), stop)
        if self.in_angle or self.in_group and not self.groups:
            raise _BadAddress
        self._end_mailbox()
        return self.mailboxes

    def _text(self, text: str) -> None:
        pending = self.pending
        if self.in_angle and pending.angle is not None:
            pending.angle.append(text)
        elif pending.angle_done:
            if text.strip():
                raise _BadAddress  # text after the angle-addr: readers disagree on it
        else:
            pending.outside.append(text)

    def _special(self, char: str, at: int) -> int:
        """Handle the special character at ``at``; return where reading goes on."""
        if char == '"':
            end = _quoted_end(self.value, at)
            self._text(self.value[at:end])
            return end
        if char == "(":
            end = _comment_end(self.value, at)
            self.pending.comments.append(self.value[at + 1:end - 1])
            return end
        pending = self.pending
        if char == "<":
            if self.in_angle or pending.angle_done:
                raise _BadAddress  # two angle-addrs in one mailbox
            self.in_angle, pending.angle = True, []
        elif char == ">":
            if not self.in_angle:
                raise _BadAddress
            self.in_angle, pending.angle_done = False, True
        elif char == "," and not self.in_angle:
            self._end_mailbox()
        elif char == ":" and not self.in_angle and self.groups and not self.in_group:
            self.in_group, self.pending = True, _Pending()  # the group's name is no address
        elif char == ";" and self.in_group and not self.in_angle:
            self._end_mailbox()
            self.in_group = False
        else:
            raise _BadAddress  # a route, a stray backslash, colon or semicolon
        return at + 1

    def _end_mailbox(self) -> None:
        pending, self.pending = self.pending, _Pending()
        if pending.empty():
            return
        if pending.angle is not None:
            address = "".join(pending.angle).strip()
            display = "".join(pending.outside) + " " + " ".join(pending.comments)
        else:
            address = "".join(pending.outside).strip()
            display = " ".join(pending.comments)
        if not _plausible_address(address):
            raise _BadAddress
        self.mailboxes.append(Mailbox(address, decode_encoded_words(display).strip()))
        if len(self.mailboxes) > self.max_addresses:
            raise _TooMany


class _TooMany(Exception):
    pass


def parse_mailboxes(value: str, *, max_addresses: int, groups: bool = False
                    ) -> list[Mailbox] | Refusal:
    """The mailboxes of an address field, or why it is refused."""
    try:
        return _Reader(value, max_addresses=max_addresses, groups=groups).read()
    except _TooMany:
        return Refusal(RefusalReason.TOO_MANY_ADDRESSES)
    except _BadAddress:
        return Refusal(RefusalReason.BAD_ADDRESS)


def looks_like_address(text: str) -> bool:
    return any(sign in text for sign in _AT_SIGNS)


def _plausible_address(address: str) -> bool:
    if not address or any(c.isspace() for c in address):
        return False
    local, at, domain = address.rpartition("@")
    return bool(at and local and domain and "@" not in local.strip('"'))


def _quoted_end(value: str, start: int) -> int:
    """Offset just past the quoted string starting at ``start``."""
    position = start + 1
    while position < len(value):
        char = value[position]
        if char == "\\":
            position += 2
            continue
        if char == '"':
            return position + 1
        position += 1
    raise _BadAddress


def _comment_end(value: str, start: int) -> int:
    """Offset just past the (possibly nested) comment starting at ``start``."""
    depth, position = 0, start
    while position < len(value):
        char = value[position]
        if char == "\\":
            position += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return position + 1
        position += 1
    raise _BadAddress


def decode_encoded_words(text: str) -> str:
    """RFC 2047 encoded words decoded (best effort: what a reader would show)."""
    return _ENCODED_WORD.sub(_decode_word, text) if "=?" in text else text


def _decode_word(match: re.Match[str]) -> str:
    charset, encoding, payload = match.group(1), match.group(2).lower(), match.group(3)
    try:
        if encoding == "b":
            data = base64.b64decode(payload + "=" * (-len(payload) % 4))
        else:
            data = _Q_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]),
                                 payload.replace("_", " ").encode("ascii", "replace"))
    except (binascii.Error, ValueError):
        return match.group(0)
    try:
        return data.decode(charset.split("*")[0], "replace")
    except LookupError:
        return data.decode("latin-1")
