"""The repeats of a cued name are looked for only where one of its words starts, and that finds
what reading every word of the text found (issue 16).

``repeats.word_matches`` replaced ``WORD.finditer`` over the whole text (most of the
recognizer's time on a 10 KB practice message). The two are compared on generated text full
of what WORD's lookbehinds and lookahead are about (apostrophes, hyphens, digits, underscores,
characters that lower to two or match a letter only when case is ignored), and the
recognizer is checked on the cases it exists for.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.census_lexicon import load_name_lexicon
from phigate.phi_scanner.findings import Finding
from phigate.phi_scanner.recognizers.repeats import REASON_REPEAT, WORD, find_repeats, word_matches

PIECES = ["david", "David", "DAVID", "gh", "GH", "o'neil", "O'Neil", "o’neil", "Ann", "anna",
          "-", "'", "’", " ", "\n", ".", "_", "7", "é", "İ", "\u212a", "ſ", "x", "-Smith",
          "'-", "’-", "son", "to "]


def _found(matches: list[tuple[int, int, str]], words: set[str]) -> list[tuple[int, int]]:
    return [(start, end) for start, end, word in matches if word.lower() in words]


@settings(max_examples=1500, deadline=None, database=None)
@given(pieces=st.lists(st.sampled_from(PIECES), max_size=40),
       words=st.sets(st.sampled_from(["david", "gh", "o'neil", "o’neil", "ann", "anna",
                                      "smith", "son"]), min_size=1))
def test_word_matches_finds_what_reading_every_word_finds(pieces: list[str],
                                                          words: set[str]) -> None:
    text = "".join(pieces)
    every = [(m.start(), m.end(), m.group()) for m in WORD.finditer(text)]
    fast = [(m.start(), m.end(), m.group()) for m in word_matches(text, words)]
    assert _found(fast, words) == _found(every, words)


LEXICON = load_name_lexicon()


def _cued(text: str, name: str, reason: str = "salutation") -> Finding:
    start = text.index(name)
    return Finding(cat.PERSON, name, start, start + len(name), "body", 0.9, reason)


def test_a_cued_name_recurs_in_any_case_and_not_inside_longer_words() -> None:
    text = "Dear Zebediah,\nZEBEDIAH called; zebediah's son, Zebediahson and zebediah did not."
    found = find_repeats(text, "body", [_cued(text, "Zebediah")], LEXICON)
    assert [(f.text, f.reason) for f in found] == [
        ("Zebediah", REASON_REPEAT), ("ZEBEDIAH", REASON_REPEAT), ("zebediah", REASON_REPEAT)]


def test_an_apostrophe_before_a_hyphen_reads_every_word() -> None:
    # "x'-Zebediah" is one word for WORD; only reading every word knows not to start inside it.
    text = "Dear Zebediah,\nx'-Zebediah and Zebediah."
    found = find_repeats(text, "body", [_cued(text, "Zebediah")], LEXICON)
    assert [f.start for f in found] == [5, text.rindex("Zebediah")]
