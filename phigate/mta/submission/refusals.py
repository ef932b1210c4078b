"""Why submission refuses a message's header: one reason, one SMTP reply line.

The reason's value is a short label, safe for logs and metrics (it never carries message
content); the reply says in one line what is wrong, so the sender can fix the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RefusalReason(StrEnum):
    # Over a limit (552 5.3.4, 554 5.6.0)
    HEADER_TOO_LARGE = "header_too_large"
    TOO_MANY_HEADER_LINES = "too_many_header_lines"
    HEADER_FIELD_TOO_LONG = "header_field_too_long"
    TOO_MANY_ADDRESSES = "too_many_addresses"
    # Malformed (550 5.6.0)
    BARE_LINE_ENDING = "bare_line_ending"
    NO_BLANK_LINE = "no_blank_line"
    NOT_A_HEADER_LINE = "not_a_header_line"
    LEADING_CONTINUATION = "leading_continuation"
    MBOX_FROM_LINE = "mbox_from_line"
    BAD_FIELD_NAME = "bad_field_name"
    SPACE_IN_FIELD_NAME = "space_in_field_name"
    SEVERAL_FROM = "several_from"
    NO_FROM = "no_from"
    SEVERAL_SENDER = "several_sender"
    SEVERAL_REPLY_TO = "several_reply_to"
    BAD_ADDRESS = "bad_address"
    ADDRESS_IN_DISPLAY_NAME = "address_in_display_name"
    # Not this account's (553 5.7.1)
    FROM_NOT_ALLOWED = "from_not_allowed"
    SENDER_NOT_ALLOWED = "sender_not_allowed"
    REPLY_TO_NOT_ALLOWED = "reply_to_not_allowed"
    RESENT_NOT_ALLOWED = "resent_not_allowed"
    UNKNOWN_CLASS = "unknown_class"
    CLASS_NOT_PERMITTED = "class_not_permitted"


_REPLIES: dict[RefusalReason, str] = {
    RefusalReason.HEADER_TOO_LARGE: "552 5.3.4 Message refused: header block too large",
    RefusalReason.TOO_MANY_HEADER_LINES:
        "552 5.3.4 Message refused: too many lines in the header block",
    RefusalReason.HEADER_FIELD_TOO_LONG: "552 5.3.4 Message refused: a header field is too long",
    RefusalReason.TOO_MANY_ADDRESSES:
        "554 5.6.0 Message refused: too many addresses in one header field",
    RefusalReason.BARE_LINE_ENDING:
        "550 5.6.0 Message refused: bare CR, bare LF or NUL in message data",
    RefusalReason.NO_BLANK_LINE:
        "550 5.6.0 Message refused: no blank line between the header and the body",
    RefusalReason.NOT_A_HEADER_LINE:
        "550 5.6.0 Message refused: a line in the header block is not a header field",
    RefusalReason.LEADING_CONTINUATION:
        "550 5.6.0 Message refused: the header block starts with a continuation line",
    RefusalReason.MBOX_FROM_LINE: "550 5.6.0 Message refused: mbox 'From ' line in the header",
    RefusalReason.BAD_FIELD_NAME:
        "550 5.6.0 Message refused: header field name not allowed by RFC 5322",
    RefusalReason.SPACE_IN_FIELD_NAME:
        "550 5.6.0 Message refused: white space before the colon of a header field name",
    RefusalReason.SEVERAL_FROM: "550 5.6.0 Message refused: more than one From: field",
    RefusalReason.NO_FROM:
        "550 5.6.0 Message refused: exactly one From: header with an address required",
    RefusalReason.SEVERAL_SENDER: "550 5.6.0 Message refused: more than one Sender: field",
    RefusalReason.SEVERAL_REPLY_TO: "550 5.6.0 Message refused: more than one Reply-To: field",
    RefusalReason.BAD_ADDRESS: "550 5.6.0 Message refused: unreadable address in a header field",
    RefusalReason.ADDRESS_IN_DISPLAY_NAME:
        "550 5.6.0 Message refused: a display name or comment contains an address",
    RefusalReason.FROM_NOT_ALLOWED: "553 5.7.1 From: header address not allowed for this account",
    RefusalReason.SENDER_NOT_ALLOWED:
        "553 5.7.1 Sender: header address not allowed for this account",
    RefusalReason.REPLY_TO_NOT_ALLOWED:
        "553 5.7.1 Reply-To: header address not allowed for this account",
    RefusalReason.RESENT_NOT_ALLOWED:
        "553 5.7.1 Resent-From:/Resent-Sender: address not allowed for this account",
    RefusalReason.UNKNOWN_CLASS: "550 5.7.1 Unknown message class in X-Phigate-Class",
    RefusalReason.CLASS_NOT_PERMITTED:
        "550 5.7.1 Message class in X-Phigate-Class not permitted for this account",
}


@dataclass(frozen=True)
class Refusal:
    reason: RefusalReason

    @property
    def reply(self) -> str:
        return _REPLIES[self.reason]
