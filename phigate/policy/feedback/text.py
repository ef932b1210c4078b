"""The human-readable part of a bounce: which addresses it names, and what it says about each.

Many mail systems send plain-text bounces (no ``message/delivery-status``), and even RFC 3464
reports often put the remote's reply only in the text. The text of a bounce has a shape
common to nearly all of them: an explanation, the failed addresses each followed (or
preceded) by the remote's reply, then a copy of the returned message. This module cuts the
text at the returned message, finds the addresses in what remains, and keeps the lines
around each as its diagnostic.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses

_ADDRESS = re.compile(r"<?([a-z0-9!#$%&'*+/=?^_`{|}~.\-]+@[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?"
                      r"(?:\.[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)+)>?", re.IGNORECASE)
_RETURNED = re.compile(
    r"^\s*[-=_*|#>\s]*(below (this line )?is (a )?copy|(a )?copy of (the |your )?(original )?"
    r"message|original message|returned message|message text follows|unsent message|"
    r"original mail|(the )?headers? of (the |your )?(original )?message|"
    r"the original message (headers|follows)|content-type: message/rfc822|"
    r"-+ ?(message|original) (headers?|body|follows)|undelivered message|"
    r"this is a copy|message headers follow|original message header)", re.IGNORECASE)
_HEADER_LINE = re.compile(r"^(Received|Return-Path|Message-ID|DKIM-Signature|"
                          r"MIME-Version):\s", re.IGNORECASE)
_RCPT_TO = re.compile(r"\brcpt to\s*:\s*<?([^\s<>]+@[^\s<>]+?)>?(?:\s|$)", re.IGNORECASE)
_ECHOED_HEADER = re.compile(r"^\s*(from|to|cc|reply-to|sender)\s*:.*$",
                            re.IGNORECASE | re.MULTILINE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|returned mail|failure notice|delivery (status )?notification|"
    r"delivery (failure|failed|problem|error)|mail delivery|could not be delivered|"
    r"non[- ]?deliver|mail system error|error sending|returning to sender|"
    r"not (be )?delivered|delivery has failed|failed delivery|warning: could not|"
    r"rejected|nondeliverable|bounce|user unknown|unknown (user|recipient|address)|"
    r"no such (user|address|mailbox)", re.IGNORECASE)
_AUTO_REPLY = re.compile(
    r"out of (the )?office|auto(matic)?[- ]?(reply|response|answer)|vacation|away from|"
    # the same in the languages mail clients write it in (read without accents)
    r"abwesenheit|automatische antwort|reponse automatique|\babsence\b|hors du bureau|"
    r"respuesta automatica|fuera de (la )?oficina|risposta automatica|fuori (sede|ufficio)|"
    r"resposta automatica|automatisch antwoord|afwezig|autosvar|automatisk svar|franvaro|"
    r"automaattinen vastaus|\u81ea\u52d5(\u5fdc\u7b54|\u8fd4\u4fe1)|\u81ea\u52a8\u56de\u590d",
    re.IGNORECASE)
_SYSTEM_LOCAL = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon",
                           "mailer_daemon", "maildaemon", "mdaemon"})
_DAEMON_LOCAL = frozenset({"mailer-daemon", "mail-daemon", "mailerdaemon", "mailer_daemon"})
_SYSTEM_NAME = re.compile(r"mailer[- ]?daemon|post_?master|mail delivery|delivery subsystem|"
                          r"\bndr\b|mail system|administrator", re.IGNORECASE)
_MAIL_FROM = re.compile(r"mail\s+from\s*:?\s*<[^>]*>", re.IGNORECASE)
_CONTACT_LINE = re.compile(
    r"^.*(\b(contact|assistance|help ?desk|kontakt\w*|wenden sie sich|contactez|contacte|"
    r"contatta\w*|neem contact)\b|\u9023\u7d61|\u554f\u3044?\u5408\u308f?\u305b|\u8054\u7cfb).*$"
    # CJK sentences wrap anywhere: "... <help@example.jp>" then "へご連絡ください" (contact us)
    r"|^.*\n\s*\S{0,3}(\u3054\u9023\u7d61|\u304a\u554f\u3044?\u5408\u308f?\u305b|\u8054\u7cfb).*$",
    re.IGNORECASE | re.MULTILINE)
_MAX_LINES = 400
# A line of a mail system's explanation is short; a forged one megabytes long would make the
# address search quadratic (it restarts at every character of a run without "@").
_MAX_LINE = 1000
_MAX_DIAGNOSTIC = 600
_MAX_ADDRESSES = 100


@dataclass(frozen=True)
class TextFailure:
    address: str
    diagnostic: str


def is_auto_reply(message: Message) -> bool:
    """A vacation notice or other auto-responder (mail systems mark bounces
    ``Auto-Submitted: auto-replied`` too, so that alone does not decide)."""
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    if str(message.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    if _AUTO_REPLY.search(subject(message)):
        return True
    auto = str(message.get("Auto-Submitted", "no")).strip().lower()
    return auto.startswith("auto-replied") and not _system_sender(message)


def subject(message: Message) -> str:
    """The Subject, RFC 2047 words decoded, accents dropped ("Réponse" -> "Reponse")."""
    raw = next((str(value) for name, value in message.raw_items()
                if name.lower() == "subject"), "")
    if not raw.isascii():  # raw 8-bit bytes (compat32 keeps them as surrogate escapes)
        raw = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    try:
        text = str(make_header(decode_header(raw)))
    except (LookupError, UnicodeError, ValueError, HeaderParseError):
        text = raw
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def from_mail_system(message: Message) -> bool:
    """Sent by a mail system (a daemon or postmaster), not a person or an auto-responder."""
    return not is_auto_reply(message) and _system_sender(message)


def _system_sender(message: Message) -> bool:
    return_path = str(message.get("Return-Path", "")).strip().lower()
    if return_path in ("<>", "<mailer-daemon>"):
        return True
    for name, address in getaddresses([str(v) for v in message.get_all("From", [])]):
        local = address.split("@")[0].lower()
        if local in _SYSTEM_LOCAL or _SYSTEM_NAME.search(name or address):
            return True
    return False


def looks_like_bounce(message: Message) -> bool:
    if is_auto_reply(message):
        return False
    return from_mail_system(message) or bool(
        _BOUNCE_SUBJECT.search(subject(message)))


_SUCCESS = re.compile(
    r"successfully (been )?(delivered|relayed)|(was|were|has been|have been) (successfully )?"
    r"(delivered|relayed) to|delivery (to .{0,80})?(succeeded|was successful)|"
    r"successful (mail )?delivery", re.IGNORECASE)
_FAILURE_SIGN = re.compile(
    r"(?<![\d.])[45]\d\d[ \-]|(?<![\d.])[45]\.\d{1,3}\.\d{1,3}|\b(could ?n[o']t|cannot|"
    r"can't|unable|fail|undeliver|not (been |yet )?delivered|reject|refus|delay|error|"
    r"bounce|unknown|giving up|retry|retrying|keep trying|problem)", re.IGNORECASE)


def is_success_notice(message: Message) -> bool:
    """A plain-text notice that delivery succeeded or was relayed (no DSN part), with no
    sign of any failure in it: not a bounce, whatever address it names."""
    text = failure_text(message)
    return bool(_SUCCESS.search(text)) and not _FAILURE_SIGN.search(text)


def failure_text(message: Message) -> str:
    """The explanation part of a bounce: its text parts up to the returned message."""
    lines: list[str] = []
    for part in _text_parts(message):
        for line in part.splitlines():
            if _RETURNED.match(line) or (_HEADER_LINE.match(line) and lines):
                break
            lines.append(line[:_MAX_LINE].rstrip())
            if len(lines) >= _MAX_LINES:
                return "\n".join(lines)
        if lines:
            break
    return "\n".join(lines)


def text_failures(message: Message, *, exclude: set[str] | None = None) -> list[TextFailure]:
    """Addresses named in the failure text, each with the text that follows it."""
    text = failure_text(message)
    ignored = {a.lower() for a in (exclude or set())} | _own_addresses(message)
    spans: list[tuple[int, int, str]] = []
    cleaned = _MAIL_FROM.sub(" ", text)  # our own sender, echoed in ">>> MAIL FROM:<...>"
    # "please contact <help@...>": not a failed address (the rest of the line may be the
    # remote's reply, "550 ... We recommend that you contact your provider", so it stays)
    cleaned = _CONTACT_LINE.sub(lambda line: _ADDRESS.sub(" ", line.group(0)), cleaned)
    rcpt = [m.group(1) for m in _RCPT_TO.finditer(cleaned)]
    cleaned = _ECHOED_HEADER.sub(" ", cleaned)  # "From: <the original sender>"
    for match in _ADDRESS.finditer(cleaned):
        address = match.group(1).strip(".")
        if address.lower() in ignored or address.split("@")[0].lower() in _DAEMON_LOCAL:
            continue
        if rcpt and address.lower() not in {r.lower() for r in rcpt}:
            continue  # a transcript names the recipient: "RCPT TO:<...>"
        spans.append((match.start(), match.end(), address))
    found: dict[str, TextFailure] = {}
    for index, (start, end, address) in enumerate(spans):
        following = spans[index + 1][0] if index + 1 < len(spans) else len(cleaned)
        if following - end < 3 and index + 1 < len(spans):  # "a@b <a@b>": same entry
            following = spans[index + 1][1]
        line_start = cleaned.rfind("\n", 0, start) + 1
        block = cleaned[line_start:following]
        if len(spans) == 1:
            block = cleaned  # one address: all the text is about it
        elif len(block.strip()) <= len(address) + 4 and index + 1 == len(spans):
            block = cleaned[line_start:]  # the reply is on the lines after
        key = address.lower()
        diagnostic = " ".join(block.split())[:_MAX_DIAGNOSTIC]
        if key in found:
            diagnostic = (found[key].diagnostic + " " + diagnostic)[:_MAX_DIAGNOSTIC]
        found[key] = TextFailure(address, diagnostic)
        if len(found) >= _MAX_ADDRESSES:
            break
    return list(found.values())


def returned_recipients(message: Message) -> list[str]:
    """``To:`` of the returned message (attached or quoted), a last resort."""
    for part in message.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                values = inner[0].get_all("To", [])
                return [a for _, a in getaddresses([str(v) for v in values]) if "@" in a]
    quoted = _quoted_to(message)
    return [quoted] if quoted else []


def _quoted_to(message: Message) -> str | None:
    seen_marker = False
    for part in _text_parts(message):
        for line in part.splitlines():
            if _RETURNED.match(line):
                seen_marker = True
            elif line[:3].lower() == "to:" and (seen_marker or _HEADER_LINE.match(line)):
                found = [a for _, a in getaddresses([line[3:]]) if "@" in a]
                if len(found) == 1:
                    return found[0]
    return None


def _own_addresses(message: Message) -> set[str]:
    """Addresses of the bounce itself (to our sender, from the daemon): never a failure."""
    values = [str(v) for name in ("To", "From", "Delivered-To", "X-Original-To", "Reply-To")
              for v in message.get_all(name, [])]
    return {a.lower() for _, a in getaddresses(values) if "@" in a}


def outer_texts(message: Message) -> list[str]:
    """Every text part of the bounce itself (not of a returned message), decoded."""
    return _text_parts(message)


def _text_parts(message: Message) -> list[str]:
    texts: list[str] = []
    for part in _walk_outer(message):
        if part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), str):
            texts.append(str(part.get_payload()))  # the boundary was not found: raw text
            continue
        if part.get_content_maintype() != "text" or part.get_content_subtype() in (
                "rfc822-headers", "html"):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            texts.append(payload.decode(charset, "replace"))
        except LookupError:
            texts.append(payload.decode("utf-8", "replace"))
    return texts


def _walk_outer(message: Message) -> list[Message]:
    """Parts of the bounce itself; returned messages (message/*) are not entered."""
    if not message.is_multipart():
        return [message]
    parts: list[Message] = []
    for part in message.get_payload():
        if not isinstance(part, Message) or part.get_content_maintype() == "message":
            continue
        parts.extend(_walk_outer(part))
    return parts
