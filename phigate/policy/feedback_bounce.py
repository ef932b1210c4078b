"""Which recipients a bounce reports, and whether each failure is permanent.

Three passes, most authoritative first:

1. RFC 3464 DSNs, read with the stdlib: the ``message/delivery-status`` part of the
   report itself. Returned messages (``message/rfc822``) are never searched, because a
   returned message can be a DSN about something else (flufl.bounce's DSN detector does
   search them and then reports the wrong recipient).
2. flufl.bounce's detectors for the many non-standard formats (Exim, qmail, Yahoo, ...).
3. flufl.bounce's "simple match" patterns again with a corrected address check: its
   ``VALID`` pattern (6.0) rejects domains containing a hyphen (``t-online.de``), so
   those bounces come back empty.

Sendmail's "(expanded from: X)" notes are honoured: X is the address we sent to, the
line above it only where an alias pointed.
"""

from __future__ import annotations

import email
import logging
import re
from collections.abc import Iterator
from email.iterators import body_line_iterator
from email.message import Message
from email.utils import getaddresses

from flufl.bounce import all_failures

from phigate.policy.feedback_model import FeedbackRecipient

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_ADDRESS = re.compile(r"^[^\s@<>()\[\],;:\"]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
                      r"(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$", re.IGNORECASE)
_EXPANDED_FROM = re.compile(r"^\s*\(expanded from:\s*<?([^\s<>()]+@[^\s<>()]+?)>?\)\s*$",
                            re.IGNORECASE)
_LONE_ADDRESS = re.compile(r"^\s*<?([^\s<>()]+@[^\s<>()]+?)>?\s*$")
_MAX_REASON = 300
_DETECTOR_HEADERS = ("From", "To", "Subject", "X-Mailer", "Message-ID", "Content-Type")

log = logging.getLogger(__name__)


def bounced_recipients(legacy: Message) -> list[FeedbackRecipient]:
    """Failed or delayed recipients reported by a message parsed with policy.compat32
    (what flufl.bounce's detectors are written against)."""
    from_dsn = _from_delivery_status(legacy)
    if from_dsn:
        return from_dsn
    _make_detector_safe(legacy)
    try:
        temporary, permanent = all_failures(legacy)
    except Exception:  # a detector tripping over odd input finds nothing
        log.warning("flufl.bounce detector failed; treating the message as unrecognised")
        temporary = permanent = frozenset()
    permanent_addresses = {_text(address) for address in permanent}
    temporary_addresses = {_text(address) for address in temporary}
    if not permanent_addresses and not temporary_addresses:
        permanent_addresses = _simple_match(legacy)
    expansions = _expanded_from(legacy)
    permanent_addresses = _undo_expansions(permanent_addresses, expansions)
    temporary_addresses = _undo_expansions(temporary_addresses, expansions) - permanent_addresses
    return ([FeedbackRecipient(address, True) for address in sorted(permanent_addresses)]
            + [FeedbackRecipient(address, False) for address in sorted(temporary_addresses)])


def _make_detector_safe(legacy: Message) -> None:
    """Work around flufl.bounce detectors that crash on odd headers (this parsed copy only).

    - compat32 returns ``email.header.Header`` objects, not ``str``, for header values
      with raw 8-bit bytes; several detectors call ``.lower()`` on them.
    - the Yale detector indexes ``getaddresses(From)[0]``, an empty list for a missing or
      unparseable From: on current Pythons.
    Either crash would stop every detector after the failing one.
    """
    for name in _DETECTOR_HEADERS:
        values = legacy.get_all(name, [])
        if any(not isinstance(value, str) for value in values):
            del legacy[name]
            for value in values:
                legacy[name] = str(value)
    if not getaddresses([str(value) for value in legacy.get_all("From", [])]):
        del legacy["From"]
        legacy["From"] = "<>"


def is_delivery_report(message: Message) -> bool:
    return next(_delivery_status_parts(message), None) is not None


# -- RFC 3464 -------------------------------------------------------------------------------


def _from_delivery_status(message: Message) -> list[FeedbackRecipient]:
    found: dict[str, FeedbackRecipient] = {}
    for part in _delivery_status_parts(message):
        for block in _status_blocks(part):
            recipient = _recipient_from_block(block)
            if recipient is None:
                continue
            known = found.get(recipient.address.lower())
            if known is None or (recipient.permanent and not known.permanent):
                found[recipient.address.lower()] = recipient
    return list(found.values())


def _delivery_status_parts(message: Message) -> Iterator[Message]:
    if message.get_content_type() == "message/delivery-status":
        yield message
        return
    if message.get_content_maintype() != "multipart" or not message.is_multipart():
        return
    for part in message.get_payload():
        if not isinstance(part, Message):
            continue
        if part.get_content_type() == "message/delivery-status":
            yield part
        elif part.get_content_maintype() == "multipart":
            yield from _delivery_status_parts(part)
        # message/rfc822 is deliberately not entered (see the module docstring)


def _status_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    # Some MTAs declare the type but the parser left text (e.g. a transfer encoding).
    text = part.get_payload(decode=True)
    if not isinstance(text, bytes):
        return []
    return [email.message_from_bytes(chunk.strip() + b"\n")
            for chunk in re.split(rb"\r?\n\s*\r?\n", text) if chunk.strip()]


def _recipient_from_block(block: Message) -> FeedbackRecipient | None:
    action = str(block.get("Action", "")).strip().lower()
    if action.startswith("delayed"):
        failed = False
    elif action.startswith(("fail", "error")):  # opensmtpd writes "error"
        failed = True
    else:  # delivered, relayed, expanded: not a failure
        return None
    address = _address_field(block.get("Original-Recipient")) or _address_field(
        block.get("Final-Recipient"))
    if address is None:
        return None
    status_match = _STATUS.search(str(block.get("Status", "")))
    status = ".".join(status_match.groups()) if status_match else None
    return FeedbackRecipient(address, permanent=failed, status=status,
                             reason=_diagnostic(block.get("Diagnostic-Code")))


def _address_field(value: object) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    kind, sep, rest = text.partition(";")
    if sep and kind.strip().lower() != "rfc822":
        return None
    candidate = (rest if sep else text).strip().strip("<>").strip()
    return candidate if _ADDRESS.match(candidate) else None


def _diagnostic(value: object) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    kind, sep, rest = text.partition(";")
    if sep and " " not in kind.strip():
        text = rest.strip()
    return text[:_MAX_REASON] or None


# -- non-standard formats -------------------------------------------------------------------


def _simple_match(legacy: Message) -> set[str]:
    # The patterns are flufl.bounce's; only the final address check differs.
    from flufl.bounce._detectors.simplematch import PATTERNS

    lines = list(body_line_iterator(legacy))
    for start, end, address_pattern in PATTERNS:
        found: set[str] = set()
        seen_start = False
        for line in lines:
            if not seen_start and start.search(line):
                seen_start = True
            if not seen_start:
                continue
            match = address_pattern.search(line)
            if match and match.group("addr"):
                found.add(match.group("addr").strip().strip("<>"))
            elif end.search(line):
                break
        valid = {address for address in found if _ADDRESS.match(address)}
        if valid:
            return valid
    return set()


def _expanded_from(legacy: Message) -> dict[str, str]:
    expansions: dict[str, str] = {}
    previous: str | None = None
    for line in body_line_iterator(legacy):
        expanded = _EXPANDED_FROM.match(line)
        if expanded and previous:
            expansions[previous.lower()] = expanded.group(1)
            previous = None
            continue
        lone = _LONE_ADDRESS.match(line)
        previous = lone.group(1) if lone else None
    return expansions


def _undo_expansions(addresses: set[str], expansions: dict[str, str]) -> set[str]:
    return {expansions.get(address.lower(), address) for address in addresses}


def _text(address: bytes | str) -> str:
    return address.decode("ascii", "replace") if isinstance(address, bytes) else address
