"""Small helpers shared by the recognizers: context windows and cue-word tests."""

from __future__ import annotations

import re
from collections.abc import Iterable

WORD = re.compile(r"[a-z][a-z'.#]*")


def before(text: str, start: int, width: int = 40) -> str:
    """The lower-cased text just before ``start`` (the usual place of a label or cue)."""
    return text[max(0, start - width):start].lower()


def after(text: str, end: int, width: int = 30) -> str:
    return text[end:end + width].lower()


def has_cue(window: str, cues: Iterable[str]) -> bool:
    """Whether any cue occurs in ``window`` as whole words (cues may be phrases)."""
    padded = f" {' '.join(WORD.findall(window))} "
    return any(f" {cue} " in padded for cue in cues)


def line_label(text: str, start: int) -> str:
    """The lower-cased text from the start of the line up to ``start`` ("Phone: ", "DOB ")."""
    line_start = text.rfind("\n", 0, start) + 1
    return text[line_start:start].lower()
