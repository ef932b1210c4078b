"""A name found once with a cue is the same name where it recurs without one.

A note says ``son David called`` and later ``DAVID DOES NOT HAVE MUCH CONTACT``; it says
``transferred to GH`` and later ``husband did not come to gh``. Once a cue recognizer has
found a person or a place, its other occurrences in the same text are findings too. Only
words that cannot be ordinary words are carried over (a census name the dictionary does not
spell in lower case, a facility code), so ``son bill`` does not turn every "bill" into a name.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Sequence

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.census_lexicon import NameLexicon, is_ordinary
from phigate.phi_scanner.findings import Finding
from phigate.phi_scanner.recognizers.clinical_people import (
    FUNCTION_WORDS,
    REASON_CLINICIAN,
    REASON_RELATIVE,
    REASON_TITLED,
)
from phigate.phi_scanner.recognizers.clinical_terms import NOT_NAME_ABBREVIATIONS
from phigate.phi_scanner.recognizers.facilities import REASON_DESTINATION, REASON_FACILITY

REASON_REPEAT = "repeat of a cued name"
CARRIED_REASONS = frozenset({REASON_CLINICIAN, REASON_RELATIVE, REASON_TITLED,
                             REASON_DESTINATION, REASON_FACILITY, "salutation",
                             "labelled name"})
FACILITY_KIND_WORDS = frozenset("""
hospital hosp medical center centre ctr med memorial rehab rehabilitation nursing home
infirmary adventist hospice health clinic manor house institute general healthcare st saint
""".split())
MAX_WORDS = 20
# A word, not glued to a longer one ("CALVERT-" before a dash and a space still counts).
WORD = re.compile(r"(?<![\w'’])(?<![A-Za-z]-)[A-Za-z][A-Za-z'’]*(?:-[A-Za-z]+)*(?![\w'’])")


# A facility's name word that is also an ordinary word ("Harbor Hospital") recurs as the
# place only where a place stands: after "to", "at", "from", "in", "by".
PLACE_PREPOSITION = re.compile(r"(?i)\b(?:to|at|from|in|by|@)[ \t]+(?:the[ \t]+)?$")


def find_repeats(text: str, part: str, findings: Sequence[Finding],
                 lexicon: NameLexicon) -> list[Finding]:
    words: dict[str, str] = {}
    guarded: set[str] = set()
    for finding in findings:
        if finding.reason not in CARRIED_REASONS or finding.part != part:
            continue
        for word in re.findall(r"[A-Za-z][A-Za-z'’]+", finding.text):
            if _carried(word, finding, lexicon):
                words.setdefault(word.lower(), finding.category)
            elif finding.reason == REASON_FACILITY and _plain_word(word):
                words.setdefault(word.lower(), finding.category)
                guarded.add(word.lower())
        if len(words) >= MAX_WORDS:
            break
    if not words:
        return []
    results = []
    for m in word_matches(text, words):
        key = m.group().lower()
        if key not in words:
            continue
        if key in guarded and not PLACE_PREPOSITION.search(text[max(0, m.start() - 12):
                                                                m.start()]):
            continue
        results.append(Finding(words[key], m.group(), m.start(), m.end(), part, 0.7,
                               REASON_REPEAT))
    return results


def word_matches(text: str, words: Collection[str]) -> Iterator[re.Match[str]]:
    """The matches of ``WORD.finditer(text)`` that can be one of ``words`` (lower case,
    letters and apostrophes), in order; others may come too.

    Scanning every word of a 10 KB text was most of this recognizer's time: the matches are
    looked for only where a word starts (str.find in the lowered text). That finds them all
    when no WORD match can start inside another one, which the lookbehinds rule out unless
    the text has an apostrophe before a hyphen (``O'-Neil``): then every word is read.
    """
    lowered = text.lower()
    if "'-" in text or "’-" in text or len(lowered) != len(text):
        # (Offsets in ``lowered`` are the text's only when no character lowers to two.)
        yield from WORD.finditer(text)
        return
    starts: set[int] = set()
    for word in words:
        at = lowered.find(word)
        while at >= 0:
            starts.add(at)
            at = lowered.find(word, at + 1)
    for start in sorted(starts):
        match = WORD.match(text, start)
        if match is not None:
            yield match


def _plain_word(word: str) -> bool:
    lowered = word.lower()
    return len(word) >= 4 and lowered not in FUNCTION_WORDS and (
        lowered not in FACILITY_KIND_WORDS) and word.upper() not in NOT_NAME_ABBREVIATIONS


def _carried(word: str, finding: Finding, lexicon: NameLexicon) -> bool:
    lowered = word.lower()
    if (lowered in FUNCTION_WORDS or lowered in FACILITY_KIND_WORDS
            or word.upper() in NOT_NAME_ABBREVIATIONS):
        return False
    if finding.category == cat.LOCATION and finding.reason == REASON_DESTINATION:
        return len(word) >= 2  # a facility code the destination rule already vetted
    return len(word) >= 3 and not is_ordinary(lowered, lexicon.ordinary_words) and (
        lowered not in lexicon.not_alone)
