"""Names found with the census lexicon, and the near-misses that must not be names."""

from __future__ import annotations

import time

import pytest

from phigate.phi_scanner.census_lexicon import fold, load_name_lexicon
from phigate.phi_scanner.recognizers.census_names import find_lexicon_names


@pytest.fixture(scope="module")
def lexicon():
    return load_name_lexicon()


def names(text, lexicon):
    return [f.text for f in find_lexicon_names(text, "t", lexicon)]


def test_lexicon_reads_the_census_files_and_knows_ordinary_words(lexicon):
    assert lexicon.is_first_name("Teresa") and lexicon.is_surname("Vasquez")
    assert len(lexicon.first_names) > 5000 and len(lexicon.surnames) > 88000
    # census names that are ordinary words, countries or nationalities never stand alone
    assert {"wisdom", "singer", "canada", "german", "will", "friends"} <= lexicon.not_alone
    # the most frequent surnames stay names even though the dictionary has "smith"
    assert not {"smith", "brown", "teresa"} & lexicon.not_alone
    assert fold("Nyström") == "nystrom"


@pytest.mark.parametrize("text,expected", [
    ("Have you been to a Calquín Cazares concert before?", ["Calquín Cazares"]),
    ("Tube Snake Boogie by Szabina J Gelencsér was on the list", ["Szabina J Gelencsér"]),
    ("the verses from Faina D. Yefremova's Cautionary Tales", ["Faina D. Yefremova"]),
    ("The talk by Maria van der Berg starts at noon", ["Maria van der Berg"]),
    ("Is there a better pop song? Marrero and Murphy were engineers.",
     ["Marrero", "Murphy"]),
    ("They had 6: Efimiya, Mary, Ariana, Isabel, Teresa and Jodi.",
     ["Efimiya", "Mary", "Ariana", "Isabel", "Teresa", "Jodi"]),
    ("Nicole: Remember me?\nJohn: You saved my life!", ["Nicole", "John"]),
    ("Her maiden name is Sandgreen", ["Sandgreen"]),
    ("Trivo lives on Grössgstötten 50 street.", ["Trivo"]),
    ("I want to add Edvard Petrussen as a beneficiary", ["Edvard Petrussen"]),
    ("follow up with patricia desrosiers in a couple of months.", ["patricia desrosiers"]),
    ("emidio p lombardo\ngarcia-smith\nunit 1009 box 0219", ["emidio p lombardo"]),
])
def test_names_without_a_salutation_or_title(lexicon, text, expected):
    found = names(text, lexicon)
    assert sorted(found) == sorted(expected), found


@pytest.mark.parametrize("text", [
    "Capitalized words like Wisdom and Discipline are often mistaken with names.",
    "I will be travelling to Canada next week, so I need my passport.",
    "There's this nice new German place downtown.",
    "Call Northgate Family Medicine or visit the Main Street Clinic.",
    "Guilty Pleasures: Five Musicians Of The Seventies You Love",  # a heading
    "Dear Friends, our flu shot clinic opens Monday.",
    "My father retired at the age of 61",
    "Tomomi works at Hawkins, Richardson and Santana now",  # a firm, not three people
    "Owens, Duran and Oneal\n12 Main St",  # a letterhead's firm name
    "She said the results were fine.",
    "Results\nSummary of the visit",
])
def test_words_firms_places_and_headings_are_not_names(lexicon, text):
    found = [name for name in names(text, lexicon) if name not in ("Tomomi",)]
    assert found == []


def test_sentence_start_alone_is_not_evidence(lexicon):
    # "Yesterday" is capitalised only because it starts the sentence
    assert names("Yesterday Sarah Whitfield picked up the forms.", lexicon) == [
        "Sarah Whitfield"]
    assert names("Will you come? Grace period ends Monday.", lexicon) == []


def test_lexicon_names_lose_to_a_drug_of_the_same_spelling(scanner):
    result = scanner.scan_text("Ask about Allegra for seasonal allergies.")
    assert ("MEDICATION", "Allegra") in {(f.category, f.text) for f in result.findings}
    assert "PERSON" not in result.categories


def test_hostile_text_stays_linear(lexicon):
    texts = ["alpha, " * 100_000, "Nicole: Hello there\n" * 30_000,
             "maria lopez went home and " * 25_000, "Ravil G Yefimov " * 40_000]
    for text in texts:
        started = time.monotonic()
        find_lexicon_names(text, "t", lexicon)
        assert time.monotonic() - started < 6.0  # quadratic would take minutes
