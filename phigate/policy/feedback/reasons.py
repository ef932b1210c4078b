"""Why a recipient bounced: one reason per failure, for DSNs and synchronous SMTP replies alike.

The reason names are sisimai's (the reference bounce parser large senders use), so figures
can be compared with it; the table below is our own, written from the published meaning of
each reason, RFC 3463/3464 status codes and the phrases mail systems typically use.

Only a bad *address* (``userunknown``, ``hostunknown``, ``hasmoved``, ``notaccept`` with a
permanent code) is a hard bounce. A blocklisted IP, a failed SPF check or a rejected sender
address is a problem on *our* side: it says nothing about the recipient, so it must never
suppress them (:func:`reason_group` tells the callers which kind of problem it is).

Order of evidence: a diagnostic phrase typical of a reason (the one that comes first in the
text), then the enhanced status code, then the SMTP stage at which the remote refused (MAIL:
our sender, RCPT: the address, DATA: the content), then the reply code alone. An unknown
user reported only after DATA is ``filtered``: the address was accepted at RCPT.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from phigate.policy.feedback.reason_names import (
    GROUP_OF,
    BounceReason,
    ReasonGroup,
    SmtpStage,
    counts_against_address,
    is_sender_side,
    reason_group,
)
from phigate.policy.feedback.reason_table import (
    DECISIVE_COUNT,
    PERMANENT_STATUS_RULES,
    PSEUDO,
    STATUS_RULES,
    TEXT_RULES,
    UNADDRESSED_UNKNOWN,
    VAGUE,
    WEAK_RULES,
)

_R = BounceReason

__all__ = ["BounceReason", "Judgement", "ReasonGroup", "SmtpStage", "counts_against_address",
           "is_sender_side", "judge", "reason_group"]


@dataclass(frozen=True)
class Judgement:
    reason: BounceReason
    #: Enhanced status: the report's, else the one in the text, else a pseudo status
    #: ``X.0.9NN`` naming the reason (sisimai's documented convention for "none given").
    status: str
    reply_code: str | None
    #: A hard bounce: the address itself is bad, and the failure is permanent.
    hard: bool
    permanent: bool

    @property
    def group(self) -> ReasonGroup:
        return GROUP_OF[self.reason]


# -- evidence in the text ---------------------------------------------------------------------

_ADDRESS_IN_TEXT = re.compile(r"<?[^\s<>@\"']+@[^\s<>@\"']+>?")
# A session transcript ("250 2.1.5 Ok ... 451 4.3.0 Error") also quotes the replies that
# succeeded: only a 4xx/5xx reply or status is the failure.
_STATUS_AFTER_REPLY = re.compile(r"(?:^|[\s:;(\[>\"'])[45]\d\d[ \-]['\"]?"
                                 r"([45]\.\d{1,3}\.\d{1,3})(?![\d.])")
# Reply and status codes inside the text ("550-5.7.1 " continuation lines) split phrases.
_CODES = re.compile(r"(?<![\d.])(?:[245]\d\d[ \-]['\"]?)?[245]\.\d{1,3}\.\d{1,3}(?![\d.])|"
                    r"(?<![\d.])[245]\d\d-(?=\S)")
_STATUS_IN_TEXT = re.compile(r"(?<![\d.])#?([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_FAILURE_STATUS_IN_TEXT = re.compile(r"(?<![\d.])#?([45])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_REPLY_IN_TEXT = re.compile(r"(?:^|[\s:;(\[>\"'])([45][0-5]\d)(?![\d.])(?:[ \-]|$)")
_STAGE_IN_TEXT: tuple[tuple[SmtpStage, re.Pattern[str]], ...] = (
    (SmtpStage.MAIL, re.compile(r"(in reply to|after|\>\>\>|\[)\s*mail[ _]from\b|"
                                r"\bmail from\s*:?\s*<[^>]*>\s*(command\s+)?(failed|rejected)")),
    (SmtpStage.RCPT, re.compile(r"(in reply to|after|\>\>\>|\[)\s*rcpt[ _]to\b|"
                                r"\brcpt to\s*:?\s*<[^>]*>\s*(command\s+)?(failed|rejected)")),
    (SmtpStage.DATA, re.compile(r"(in reply to|after)\s*(end of\s+)?data\b|\(data\)|"
                                r"smtp command\s*:?\s*data\b|\[data\]|>>>\s*data\b")),
    (SmtpStage.HELO, re.compile(r"(in reply to|after|\>\>\>)\s*(helo|ehlo)\b")),
)


_MAX_TEXT = 2000


def status_in_text(text: str | None) -> str | None:
    match = _FAILURE_STATUS_IN_TEXT.search(text or "")
    return ".".join(match.groups()) if match else None


def reply_code_in_text(text: str | None) -> str | None:
    match = _REPLY_IN_TEXT.search((text or "")[:_MAX_TEXT])
    return match.group(1) if match else None


def stage_in_text(text: str) -> SmtpStage | None:
    lowered = text.lower()
    for stage, pattern in _STAGE_IN_TEXT:
        if pattern.search(lowered):
            return stage
    return None


def judge(*, status: str | None = None, reply_code: str | None = None,
          text: str | None = None, stage: SmtpStage | None = None,
          temporary: bool | None = None, summary: str | None = None) -> Judgement:
    """The reason for one recipient's failure.

    ``status``: the report's enhanced status (``Status:`` field), if any; ``reply_code``:
    the SMTP reply code (``550``); ``text``: the diagnostic; ``stage``: the command the
    remote refused, when known (the delivery client knows it; otherwise read from the
    text); ``temporary``: the caller's knowledge of permanence (``Action: delayed``);
    ``summary``: the reporting MTA's own explanation for this recipient, when the caller
    holds it apart from the remote's reply (a DSN's human-readable part; default: what
    ``text`` says before the first reply code it quotes).
    """
    lowered = _normalised(text)
    reply = reply_code or reply_code_in_text(lowered)
    given = _preferred_status(_valid_status(status), lowered)
    permanent = _permanent(given, reply, temporary)
    stage = stage or stage_in_text(lowered)
    reason = _reason(lowered, given, reply, stage)
    if reason is _R.USERUNKNOWN and stage is None and _says_nothing_of_address(given) and (
            _phrase_in(_before_reply(lowered if summary is None else _normalised(summary)))
            is not _R.USERUNKNOWN):
        # "550 No such user" quoted under an undefined status (X.0.0, X.3.0), at no known
        # stage, the reporting MTA itself not calling the address unknown: the same words
        # are what many recipient-side filters answer after DATA. Without a 5.1.x status,
        # a refusal at RCPT or the reporter's own verdict, it is not proof the address
        # is bad: a gray case (soft), not a suppression.
        reason = _R.FILTERED
    if temporary and reply is None and reason in (_R.ONHOLD, _R.UNDEFINED):
        # a delay notice quoting no reply says only that delivery is taking too long (a
        # live 4xx reply, which has a code, stays on hold)
        reason = _R.EXPIRED
    hard = _hard(reason, given, reply)
    if given is None:
        given = f"{5 if permanent or hard else 4}.0.{PSEUDO[reason]}"
    return Judgement(reason, given, reply, hard, permanent or hard)


def _normalised(text: str | None) -> str:
    raw = " ".join(_plain_letters((text or "")[:_MAX_TEXT]).lower().split())
    return _ADDRESS_IN_TEXT.sub("<address>", raw)  # "filtered@example.org" says nothing


def _plain_letters(text: str) -> str:
    """Accents dropped, compatibility forms folded ("Empfänger" -> "Empfanger", full-width
    digits -> ASCII), so one ASCII phrase serves the languages that write it with accents."""
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(c))


_REPLY_START = re.compile(r"(?:^|[\s:;(\[>\"'])[45]\d\d[ \-]")


def _before_reply(text: str) -> str:
    """What a text says before the first SMTP reply it quotes: the reporter's own words."""
    match = _REPLY_START.search(text)
    return text if match is None else text[:match.start()]


def _says_nothing_of_address(status: str | None) -> bool:
    """An "other or undefined" status of no subject or of the mail system (X.0.0, X.3.0):
    the reporting MTA did not classify the failure as one of the address or mailbox."""
    return status is not None and status[1:] in (".0.0", ".3.0")


def _preferred_status(reported: str | None, text: str) -> str | None:
    """The report's status, unless it is the generic X.0.0 and the remote's reply (the code
    right after its reply code) is more specific."""
    if reported is not None and not reported.endswith(".0.0"):
        return reported
    after_reply = _STATUS_AFTER_REPLY.search(text)
    if after_reply is not None:
        return after_reply.group(1)
    return status_in_text(text) or reported


def _hard(reason: BounceReason, status: str | None, reply: str | None) -> bool:
    """The address itself is bad. An unknown user, domain or moved mailbox is that whatever
    the code; a domain that accepts no mail unless the remote said it was temporary."""
    if reason is _R.NOTACCEPT:
        return not ((status or "").startswith("4") or (reply or "").startswith("4"))
    return reason in (_R.USERUNKNOWN, _R.HOSTUNKNOWN, _R.HASMOVED)


def _valid_status(status: str | None) -> str | None:
    if not status:
        return None
    match = _STATUS_IN_TEXT.fullmatch(status.strip())
    return ".".join(match.groups()) if match else None


def _permanent(status: str | None, reply: str | None, temporary: bool | None) -> bool:
    if temporary is not None:
        return not temporary
    if status is not None:
        return status.startswith("5")
    if reply is not None:
        return reply.startswith("5")
    return True


def _reason(text: str, status: str | None, reply: str | None,
            stage: SmtpStage | None) -> BounceReason:
    by_status = _by_status(status)
    if stage is SmtpStage.MAIL and by_status in (None, _R.SECURITYERROR):
        by_status = _R.REJECTED  # "not authorized" in reply to MAIL FROM: our sender
    reason = _by_phrase(text) or by_status or _by_stage(stage, reply, status)
    if reason is _R.USERUNKNOWN and stage is SmtpStage.DATA and not (
            status or "").endswith(".1.1"):
        return _R.FILTERED  # refused only after the content was seen: a filter's doing
    if reason is not None:
        return reason
    if reply is not None and reply[:2] == "50":
        return _R.SYNTAXERROR
    if reply is not None or status is not None or text:
        return _R.ONHOLD
    return _R.UNDEFINED


def _by_phrase(text: str) -> BounceReason | None:
    """The remote's own words first: a relay's summary ("Unknown address error 550-'5.2.2
    Mailbox full'") often precedes the reply it quotes; when the quoted reply has no telling
    phrase, its status code speaks before the summary does."""
    quoted = _STATUS_AFTER_REPLY.search(text)
    if quoted is not None and quoted.start() > 0 and not quoted.group(1).endswith(".0.0"):
        # the quoted reply runs to the next code (a relay often repeats its summary after
        # it); a generic X.0.0 line ("554 5.0.0 Service unavailable") is a summary itself
        reply_text = text[quoted.start():_end_of_reply(text, quoted.end(), quoted.group(1))]
        found = _phrase_in(_CODES.sub(" ", reply_text)) or _by_status(quoted.group(1))
        if found is not None:
            return found
    return _phrase_in(_CODES.sub(" ", text))


def _end_of_reply(text: str, start: int, status: str) -> int:
    """Where a quoted reply ends: at the next code with another status (relays repeat the
    reply they quote, "550 5.2.1 host mx [192.0.2.1]: 550 5.2.1 <a@b>... User Unknown", and
    often their own summary after it, "5.1.0 - Unknown address error")."""
    for code in _CODES.finditer(text, start):
        other = status_in_text(code.group(0))
        if other is not None and other != status:
            return code.start()
    return len(text)


_TIERS = (TEXT_RULES[:DECISIVE_COUNT],
          tuple(rule for rule in TEXT_RULES[DECISIVE_COUNT:] if rule[0] not in VAGUE),
          tuple(rule for rule in TEXT_RULES[DECISIVE_COUNT:] if rule[0] in VAGUE) + WEAK_RULES)


def _phrase_in(text: str) -> BounceReason | None:
    text = " ".join(text.split())
    if UNADDRESSED_UNKNOWN.search(text):
        return _R.FILTERED
    for tier in _TIERS:
        best: tuple[int, int, BounceReason] | None = None
        for order, (reason, pattern) in enumerate(tier):
            match = pattern.search(text)
            if match is not None and (best is None or (match.start(), order) < best[:2]):
                best = (match.start(), order, reason)
        if best is not None:
            return best[2]
    return None


def _by_status(status: str | None) -> BounceReason | None:
    """The reason an enhanced status names. A temporary "other or undefined" status
    (4.3.0, 4.4.0, 4.7.0) names none: it says no more than "try again later"."""
    if status is None:
        return None
    kind, subject, detail = status.split(".")
    if kind == "4" and detail == "0":
        return None
    if kind == "5" and f"{subject}.{detail}" in PERMANENT_STATUS_RULES:
        return PERMANENT_STATUS_RULES[f"{subject}.{detail}"]
    return STATUS_RULES.get(f"{subject}.{detail}")


def _by_stage(stage: SmtpStage | None, reply: str | None,
              status: str | None) -> BounceReason | None:
    if stage is SmtpStage.MAIL:
        return _R.REJECTED
    if stage in (SmtpStage.CONNECT, SmtpStage.HELO):
        return _R.BLOCKED
    if stage is SmtpStage.RCPT and (reply or status or "5").startswith("5"):
        return _R.USERUNKNOWN
    if stage is SmtpStage.DATA:
        return _R.FILTERED
    return None
