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

from phigate.policy.feedback.model import FeedbackRecipient
from phigate.policy.feedback.reasons import judge
from phigate.policy.feedback.stray_dsn import stray_status_blocks
from phigate.policy.feedback.text import (
    failure_text,
    is_auto_reply,
    is_success_notice,
    looks_like_bounce,
    returned_recipients,
    text_failures,
)

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_ADDRESS = re.compile(r"^[^\s@<>()\[\],;:\"]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
                      r"(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$", re.IGNORECASE)
# one "@" between a local part (plain, or quoted: "a..b"@example.org) and a domain, neither
# holding what no address holds
_PLAUSIBLE = re.compile(r'("[^"\\\r\n]*"|[^\s@<>()\[\]{},;:"]+)@[^\s@<>()\[\]{},;:"]+')
_EXPANDED_FROM = re.compile(r"^\s*\(expanded from:\s*<?([^\s<>()]+@[^\s<>()]+?)>?\)\s*$",
                            re.IGNORECASE)
_LONE_ADDRESS = re.compile(r"^\s*<?([^\s<>()]+@[^\s<>()]+?)>?\s*$")
_MAX_REASON = 300
_STATUS_COMMENT = re.compile(r"\(([^()]*)\)")
_LEADING_REPLY = re.compile(r"^\s*([245]\d\d)(?:[ \-]|$)")
_DETECTOR_HEADERS = ("From", "To", "Subject", "X-Mailer", "Message-ID", "Content-Type")

log = logging.getLogger(__name__)


def bounced_recipients(legacy: Message) -> list[FeedbackRecipient]:
    """Failed or delayed recipients reported by a message parsed with policy.compat32
    (what flufl.bounce's detectors are written against), each with its reason."""
    if is_auto_reply(legacy):
        return []
    texts = {failure.address.lower(): failure.diagnostic for failure in text_failures(legacy)}
    from_dsn = _from_delivery_status(legacy, texts)
    if from_dsn or _only_successes(legacy):
        return from_dsn
    if not is_delivery_report(legacy) and looks_like_bounce(legacy):
        blocks, rest = stray_status_blocks(legacy)
        if _only_successes(legacy, blocks) or (not blocks and is_success_notice(legacy)):
            return []
        from_dsn = _from_stray_blocks(blocks, rest, texts)
        if from_dsn:
            return from_dsn
    if not (looks_like_bounce(legacy) or legacy.get_content_type() == "multipart/report"):
        # flufl.bounce's detectors read any "..., a@b," line as a failure: a person's own
        # mail naming an address ("send it to my wife, kim@example.com, thanks") is no bounce
        return []
    _make_detector_safe(legacy)
    try:
        temporary, permanent = all_failures(legacy)
    except Exception:  # a detector tripping over odd input finds nothing
        log.warning("flufl.bounce detector failed; treating the message as unrecognised")
        temporary = permanent = frozenset()
    # a detector can mistake other text for an address ('"emailAddress":"a@b"' in JSON)
    permanent_addresses = {a for a in map(_text, permanent) if _PLAUSIBLE.fullmatch(a)}
    temporary_addresses = {a for a in map(_text, temporary) if _PLAUSIBLE.fullmatch(a)}
    if not permanent_addresses and not temporary_addresses:
        permanent_addresses = _simple_match(legacy)
    expansions = _expanded_from(legacy)
    permanent_addresses = _undo_expansions(permanent_addresses, expansions)
    temporary_addresses = _undo_expansions(temporary_addresses, expansions) - permanent_addresses
    if not permanent_addresses and not temporary_addresses:
        return _from_text(legacy, texts)
    whole = failure_text(legacy)
    found = [(a, False) for a in permanent_addresses] + [(a, True) for a in temporary_addresses]
    return [_judged(address, texts.get(address.lower()) or whole, temporary=is_temporary)
            for address, is_temporary in _in_text_order(found, whole)]


def _from_text(legacy: Message, texts: dict[str, str]) -> list[FeedbackRecipient]:
    """A bounce none of flufl.bounce's detectors knows: the addresses its text names, or
    the returned message's one recipient."""
    if not looks_like_bounce(legacy):
        return []
    if texts:
        return [_judged(address, text) for address, text in texts.items()]
    returned = returned_recipients(legacy)
    if len(returned) != 1:
        return []
    return [_judged(returned[0], failure_text(legacy))]


def _in_text_order(found: list[tuple[str, bool]], text: str) -> list[tuple[str, bool]]:
    lowered = text.lower()

    def position(item: tuple[str, bool]) -> tuple[int, str]:
        at = lowered.find(item[0].lower())
        return (at if at >= 0 else len(lowered), item[0].lower())

    return sorted(found, key=position)


def _judged(address: str, text: str | None, *, status: str | None = None,
            temporary: bool | None = None) -> FeedbackRecipient:
    compact = " ".join((text or "").split())[:_MAX_REASON] or None
    verdict = judge(status=status, text=text, temporary=temporary)
    return FeedbackRecipient(address, permanent=verdict.hard, status=verdict.status,
                             reason=compact, category=verdict.reason.value,
                             reply_code=verdict.reply_code,
                             # a delay notice stays one, whatever it says: it counts for nothing
                             temporary=bool(temporary) or not verdict.permanent)


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


def _from_delivery_status(message: Message, texts: dict[str, str]) -> list[FeedbackRecipient]:
    return _from_blocks([block for part in _delivery_status_parts(message)
                         for block in _status_blocks(part)], texts)


def _from_stray_blocks(blocks: list[Message], rest: str,
                       texts: dict[str, str]) -> list[FeedbackRecipient]:
    """Status blocks the MIME structure did not deliver as a report (see stray_dsn). A
    single recipient's diagnostic is all the rest of the text, as for a text bounce."""
    if len(blocks) == 1:
        address = _address_field(blocks[0].get("Original-Recipient")) or _address_field(
            blocks[0].get("Final-Recipient"))
        if address is not None:
            texts = {address.lower(): " ".join(rest.split())[:_MAX_REASON * 2]}
    return _from_blocks(blocks, texts)


def _from_blocks(blocks: list[Message], texts: dict[str, str]) -> list[FeedbackRecipient]:
    found: dict[str, FeedbackRecipient] = {}
    for block in blocks:
        recipient = _recipient_from_block(block, texts)
        if recipient is None:
            continue
        known = found.get(recipient.address.lower())
        if known is None or (known.temporary and not recipient.temporary):
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


def _recipient_from_block(block: Message, texts: dict[str, str]) -> FeedbackRecipient | None:
    status_field = str(block.get("Status", ""))
    status_match = _STATUS.search(status_field)
    action = _action_of(block)
    if action.startswith("delayed"):
        temporary: bool | None = True
    elif action.startswith(("fail", "error")):  # opensmtpd writes "error"
        temporary = None
    else:  # delivered, relayed, expanded: not a failure
        return None
    address = _address_field(block.get("Original-Recipient")) or _address_field(
        block.get("Final-Recipient"))
    final = _address_field(block.get("Final-Recipient"))
    if address is None:
        return None
    status = ".".join(status_match.groups()) if status_match else None
    diagnostic = _diagnostic(block.get("Diagnostic-Code"))
    text = texts.get(address.lower()) or texts.get((final or "").lower())
    # a comment in the Status field is the reporting MTA's own explanation
    # ("Status: 4.0.0 (host name lookup failure)")
    comment = " ".join(_STATUS_COMMENT.findall(status_field)) or None
    # the diagnostic's type says who answered: "x-unix" is a local delivery program (a
    # pipe, procmail, a maildir writer), i.e. a mailer error unless its words say more
    local = "[x-unix;]" if _diagnostic_type(block.get("Diagnostic-Code")) == "x-unix" else None
    evidence = " ".join(t for t in (local, diagnostic, text, comment) if t)
    verdict = judge(status=status, text=evidence or None, temporary=temporary,
                    summary=" ".join(t for t in (text, comment) if t))
    reply = _reply_code(diagnostic) or verdict.reply_code
    return FeedbackRecipient(address, permanent=verdict.hard, status=verdict.status,
                             reason=diagnostic or (" ".join((text or "").split())[:_MAX_REASON]
                                                   or None),
                             category=verdict.reason.value, reply_code=reply,
                             temporary=bool(temporary))


def _action_of(block: Message) -> str:
    """The block's Action:. RFC 3464 requires it; where a mail system left it out, the
    status class says what happened (2.x.x delivered, 4.x.x delayed, 5.x.x failed)."""
    action = str(block.get("Action", "")).strip().lower()
    if action:
        return action
    status = _STATUS.search(str(block.get("Status", "")))
    return {"2": "delivered", "4": "delayed", "5": "failed"}.get(
        status.group(1) if status else "", "")


def _only_successes(message: Message, blocks: list[Message] | None = None) -> bool:
    """A delivery report whose recipients were all delivered, relayed or expanded."""
    if blocks is None:
        blocks = [block for part in _delivery_status_parts(message)
                  for block in _status_blocks(part)]
    actions = [action for action in map(_action_of, blocks) if action]
    return bool(actions) and all(a.startswith(("deliver", "relay", "expand")) for a in actions)


def _reply_code(diagnostic: str | None) -> str | None:
    match = _LEADING_REPLY.match(diagnostic or "")
    return match.group(1) if match else None


def _address_field(value: object) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    kind, sep, rest = text.partition(";")
    if sep and kind.strip().lower() != "rfc822":
        return None
    candidate = (rest if sep else text).strip().strip("<>").strip()
    return candidate if _ADDRESS.match(candidate) else None


def _diagnostic_type(value: object) -> str | None:
    kind, sep, _ = " ".join(str(value or "").split()).partition(";")
    return kind.strip().lower() if sep and kind.strip() and " " not in kind.strip() else None


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
