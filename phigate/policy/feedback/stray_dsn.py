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

# A field line of a delivery-status block ("Final-Recipient: rfc822; a@b"); continuation
# lines start with whitespace.
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:(.*)$")
_RECIPIENT_FIELDS = frozenset({"final-recipient", "original-recipient"})
_OUTCOME_FIELDS = frozenset({"action", "status"})
# a per-message block ("Reporting-MTA: ...") is no one's diagnostic either
_DSN_FIELDS = _RECIPIENT_FIELDS | _OUTCOME_FIELDS | {"reporting-mta", "arrival-date",
                                                     "received-from-mta", "diagnostic-code"}
_MAX_BLOCKS = 100


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
