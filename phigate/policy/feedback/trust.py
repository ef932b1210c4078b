"""Whether a feedback report may change anything: tied to mail we sent, from whom it claims.

Anyone can send mail to the feedback listener. So:

- A bounce counts only when it is tied to mail we sent: it came to the VERP address of one
  recipient (the token verifies: that recipient, nobody else), or the Message-ID of the
  returned message is one we sent to the recipients it names within ``[feedback]
  match_days`` (only those recipients). Anything else is *unverified*: recorded and
  counted, but it suppresses nobody.
- A complaint counts when its DKIM signature passes for a domain of ``[feedback]
  trusted_reporters`` (mailbox providers' feedback loops), or when the returned message
  carries one of our tokens (then it is about that token's recipient, at most once per
  token).
- ``Action: delayed``, ``relayed`` and ``expanded`` are not failures.
- Reports are counted once: by their own Message-ID, and by original Message-ID plus
  recipient.
"""

from __future__ import annotations

import hashlib
import re
from email.message import Message
from enum import StrEnum

_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")


class Trust(StrEnum):
    TOKEN = "token"  # noqa: S105  (a verified VERP/unsubscribe token names the recipient)
    SENT = "sent"  # the original Message-ID is one we sent to that recipient
    REPORTER = "reporter"  # DKIM pass from a trusted feedback-loop domain
    UNVERIFIED = "unverified"  # nothing ties it to our mail: record, change nothing


def message_id(value: object) -> str | None:
    """The first ``<...>`` Message-ID in a header value, lowercased, or None."""
    match = _MESSAGE_ID.search(str(value or ""))
    return match.group(0).lower() if match else None


def report_message_id(message: Message) -> str | None:
    return message_id(message.get("Message-ID"))


def original_message_id(message: Message) -> str | None:
    """Message-ID of the returned message (attached, its headers, or named by the DSN)."""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                found = message_id(inner[0].get("Message-ID"))
                if found:
                    return found
        elif content_type == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                for line in payload.decode("utf-8", "replace").splitlines():
                    if line.lower().startswith("message-id:"):
                        found = message_id(line[11:])
                        if found:
                            return found
        elif content_type == "message/delivery-status":
            found = _named_in_status(part)
            if found:
                return found
    return None


def _named_in_status(part: Message) -> str | None:
    payload = part.get_payload()
    blocks = payload if isinstance(payload, list) else [part]
    for block in blocks:
        if isinstance(block, Message):
            found = message_id(block.get("X-Original-Message-ID"))
            if found:
                return found
    return None


def is_trusted_reporter(domain: str | None, trusted: list[str]) -> bool:
    """``domain`` (a passing DKIM signature's d=) is, or is under, a trusted reporter."""
    if not domain:
        return False
    domain = domain.lower().rstrip(".")
    return any(domain == entry.lower() or domain.endswith("." + entry.lower())
               for entry in trusted if entry)


def dedupe_key(*parts: str) -> str:
    """A fixed-size key for the seen-reports table (no address stored in the clear)."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "replace")).hexdigest()
