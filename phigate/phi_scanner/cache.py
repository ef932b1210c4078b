"""Bounded per-worker caches: the cheap recognizers' findings per paragraph, NER's per chunk.

Practice mail repeats itself: the letterhead, the footer lines and the confidentiality
notice recur in every message (and a footer line ~40 times in one HTML part), and a campaign
sends one body to thousands of patients with only the greeting changed. Scanning each
distinct paragraph once per worker is what makes scanning cost what a message *adds*.

Nothing readable is kept: the key is an HMAC-SHA256 of the paragraph under a random key
drawn when the process starts (so a key cannot be checked against a guessed text outside
this process, and dies with it), and the value is offsets, categories, confidences and
reasons (fixed strings of the recognizers), never the matched text. The finding's text is
cut again from the paragraph being scanned, which is in hand on every hit.

NER's answers are cached the same way, one entry per chunk the model reads (the model sees
only the chunk, so its entities depend on nothing else): the value is each entity's label
and offsets within the chunk. A campaign's shared paragraphs then cost the model once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from phigate.phi_scanner.findings import Finding

#: A blank line (spaces and tabs allowed) separates paragraphs. Line ends may be CRLF: mail
#: that came over SMTP keeps them in its text parts, and without the ``\r?`` such a body was
#: one paragraph, greeting included, so a campaign's text/plain part never hit the cache.
_PARAGRAPH_BREAK = re.compile(r"\r?\n(?:[ \t]*\r?\n)+")


@dataclass(frozen=True, slots=True)
class CachedFinding:
    """A finding without its text or part: offsets into the paragraph it was found in."""

    category: str
    start: int
    end: int
    confidence: float
    reason: str


#: What one paragraph gave, per recognizer stage (the stages' order is the scanner's).
CachedStages = tuple[tuple[CachedFinding, ...], ...]
#: What NER found in one chunk: (label, start, end), offsets into the chunk.
CachedEntities = tuple[tuple[str, int, int], ...]

_Value = TypeVar("_Value")


def paragraphs(text: str) -> Iterator[tuple[int, str]]:
    """``(offset, paragraph)`` for each paragraph of ``text``; the breaks are left out."""
    start = 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        if match.start() > start:
            yield start, text[start:match.start()]
        start = match.end()
    if start < len(text):
        yield start, text[start:]


#: The end of a text where a signature is looked for (``clinical_people.signature``: the
#: last 60 characters): the paragraphs it reaches into are one unit, cached apart.
TAIL_CHARS = 60


def cache_units(text: str) -> Iterator[tuple[int, str, bool]]:
    """``(offset, unit, is_tail)``: the paragraphs, the last ones merged into a tail that
    holds at least the text's last ``TAIL_CHARS`` characters."""
    units = list(paragraphs(text))
    tail_from = len(text) - TAIL_CHARS
    while len(units) > 1 and units[-1][0] > tail_from:
        units.pop()
    if not units:
        return
    for offset, paragraph in units[:-1]:
        yield offset, paragraph, False
    yield units[-1][0], text[units[-1][0]:], True  # verbatim: its end is the text's end


def strip(findings: Sequence[Finding], offset: int) -> tuple[CachedFinding, ...]:
    return tuple(CachedFinding(f.category, f.start - offset, f.end - offset, f.confidence,
                               f.reason) for f in findings)


def restore(cached: Sequence[CachedFinding], text: str, part: str, offset: int
            ) -> list[Finding]:
    """Findings again, their text cut from ``text`` (the paragraph's segment)."""
    return [Finding(c.category, text[offset + c.start:offset + c.end], offset + c.start,
                    offset + c.end, part, c.confidence, c.reason) for c in cached]


class FindingsCache(Generic[_Value]):
    """Least-recently-used, at most ``max_entries`` texts; one per worker process (and per
    kind of value: each instance draws its own key)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._key = os.urandom(32)
        self._entries: OrderedDict[bytes, _Value] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def key(self, paragraph: str, *, tail: bool = False) -> bytes:
        # A text's tail is read for a signature, a paragraph within it is not: apart.
        domain = b"tail\x00" if tail else b"paragraph\x00"
        return hmac.new(self._key, domain + paragraph.encode("utf-8", "surrogatepass"),
                        hashlib.sha256).digest()

    def get(self, key: bytes) -> _Value | None:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: bytes, value: _Value) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
