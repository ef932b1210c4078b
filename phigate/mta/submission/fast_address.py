"""The common MAIL/RCPT path, ``<local@domain>`` with plain ASCII atoms, parsed without
the email package's header parser.

aiosmtpd parses every MAIL and RCPT address with ``email._header_value_parser``
(``get_angle_addr``): a general RFC 5322 tokenizer that builds a token tree, about a tenth
of ``serve``'s CPU per message. Nearly every real address is a dot-atom at a dot-atom, for
which that parser returns the text unchanged; :func:`simple_angle_addr` recognises exactly
that shape and returns what ``get_angle_addr`` would, and anything else (quoted local
parts, comments, UTF-8, the null path, odd whitespace) is left to aiosmtpd's parser, so
the outcome never differs (tests/mta/submission/test_fast_address.py compares both).
"""

from __future__ import annotations

import re

# RFC 5322 atext, ASCII only; a dot-atom is atoms joined by single dots.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
# After ">": nothing, or spaces then a parameter that starts with neither whitespace nor
# a comment (the parser would treat those differently: leave them to it).
_SIMPLE = re.compile(rf"<({_DOT_ATOM}@{_DOT_ATOM})>((?: +[^\s(][^\r\n]*)?)")


def simple_angle_addr(arg: str) -> tuple[str, str] | None:
    """``(address, rest)`` as aiosmtpd's ``get_angle_addr`` gives them for a plain
    ``<local@domain>[ params]``; None when ``arg`` is anything else."""
    match = _SIMPLE.fullmatch(arg)
    if match is None:
        return None
    return match.group(1), match.group(2).lstrip(" ")
