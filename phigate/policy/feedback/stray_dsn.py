"""RFC 3464 per-recipient fields that reached us as plain text, not as a delivery-status part.

A report whose MIME structure is broken (a boundary line indented by a space, a missing
``Content-Type`` line, a relay that flattened the report into one text part) still carries
its ``Final-Recipient:`` / ``Action:`` / ``Status:`` blocks, only inside the text. Those
fields are the most precise thing the report says, so they are read from the text rather
than guessing from the prose around the addresses.
"""

from __future__ import annotations

import email
import re
from email import policy
from email.message import Message

from phigate.policy.feedback.text import failure_text, outer_texts

# A field line of a delivery-status block ("Final-Recipient: rfc822; a@b"); continuation
# lines start with whitespace.
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:(.*)$")
_RECIPIENT_FIELDS = frozenset({"final-recipient", "original-recipient"})
_OUTCOME_FIELDS = frozenset({"action", "status"})
# a per-message block ("Reporting-MTA: ...") is no one's diagnostic either
_DSN_FIELDS = _RECIPIENT_FIELDS | _OUTCOME_FIELDS | {"reporting-mta", "arrival-date",
                                                     "received-from-mta", "diagnostic-code"}
_MAX_BLOCKS = 100


def stray_status_blocks(message: Message) -> tuple[list[Message], str]:
    """Status blocks in any text part of the bounce itself (a delivery-status part sent as
    text/plain, or swallowed by the part before it), and the failure text without them."""
    texts = outer_texts(message) + _outside_parts(message)
    blocks = [block for text in texts for block in status_blocks_in_text(text)[0]]
    return blocks[:_MAX_BLOCKS], status_blocks_in_text(failure_text(message))[1]


def _outside_parts(message: Message) -> list[str]:
    """Text the MIME parser left outside every part (preambles and epilogues of the
    bounce's multiparts, not of a returned message): where a part goes whose boundary
    line is damaged inside a nested multipart."""
    found: list[str] = []
    stack = [message]
    while stack:
        part = stack.pop()
        if part.get_content_maintype() != "multipart" or not part.is_multipart():
            continue
        found.extend(text for text in (part.preamble, part.epilogue) if text)
        stack.extend(child for child in part.get_payload()
                     if isinstance(child, Message) and child.get_content_maintype() != "message")
    return found


def status_blocks_in_text(text: str) -> tuple[list[Message], str]:
    """Per-recipient blocks (runs of header-like lines naming a recipient and an action
    or a status) found in ``text``, and the rest of the text (the reporter's prose and
    any transcript it quotes)."""
    blocks: list[Message] = []
    rest: list[str] = []
    for lines, is_run in _field_runs(text):
        names = {match.group(1).lower() for match in map(_FIELD.match, lines) if match}
        if is_run and names & _RECIPIENT_FIELDS and names & _OUTCOME_FIELDS:
            if len(blocks) < _MAX_BLOCKS:
                blocks.append(email.message_from_string("\n".join(lines) + "\n\n",
                                                        policy=policy.compat32))
        elif not (is_run and names & _DSN_FIELDS):
            rest.extend(lines)
    return blocks, "\n".join(rest)


def _field_runs(text: str) -> list[tuple[list[str], bool]]:
    """The text cut into runs of consecutive field lines (with their continuation lines;
    a blank line or any other line ends a run), ``True``, and the other lines, ``False``."""
    runs: list[tuple[list[str], bool]] = []
    current: list[str] = []
    for line in text.splitlines():
        if (current and line[:1] in (" ", "\t") and line.strip()) or _FIELD.match(line):
            current.append(line)
            continue
        if current:
            runs.append((current, True))
            current = []
        runs.append(([line], False))
    if current:
        runs.append((current, True))
    return runs
