"""The clinical recognizers in the three cases notes are written in.

Every case below runs as written (Title/sentence case), in ALL CAPS and in lower case: the
spaCy model is blind in the last two, so the cue words, dates, facilities and the lexicon
must not be. True positives name the span that must be found; near-misses are the look-alikes
that must not be reported in that category. The few rules that only hold in one case say so
(``cases``) with the reason. Made-up names and places only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.census_lexicon import load_name_lexicon
from phigate.phi_scanner.findings import Finding
from phigate.phi_scanner.health_vocabulary import load_vocabulary
from phigate.phi_scanner.recognizers.care_dates import find_care_dates
from phigate.phi_scanner.recognizers.clinical_people import find_clinical_people
from phigate.phi_scanner.recognizers.clinical_terms import find_clinical_terms
from phigate.phi_scanner.recognizers.contact import find_pager_numbers
from phigate.phi_scanner.recognizers.dates import find_dates
from phigate.phi_scanner.recognizers.facilities import find_facilities
from phigate.phi_scanner.recognizers.health_terms import find_health_patterns, find_vocabulary_terms
from phigate.phi_scanner.recognizers.numbers import find_ages
from phigate.phi_scanner.recognizers.recipient import find_recipient_statements

CASES: dict[str, Callable[[str], str]] = {
    "as-written": lambda text: text,
    "upper": str.upper,
    "lower": str.lower,
}
ALL = tuple(CASES)


@dataclass(frozen=True)
class Case:
    text: str
    expected: str | None  # the span that must be found; None: a near-miss
    cases: tuple[str, ...] = ALL


def people(text: str) -> list[Finding]:
    return find_clinical_people(text, "t", load_name_lexicon())


def dates(text: str) -> list[Finding]:
    return find_care_dates(text, "t") + find_dates(text, "t")


def places(text: str) -> list[Finding]:
    return find_facilities(text, "t", load_name_lexicon())


def health(text: str) -> list[Finding]:
    vocabulary = load_vocabulary()
    found = (find_clinical_terms(text, "t") + find_vocabulary_terms(text, "t", vocabulary)
             + find_health_patterns(text, "t", vocabulary))
    return [f for f in found if f.category in cat.HEALTH_CATEGORIES
            and f.category != cat.ENCOUNTER]


def recipient(text: str) -> list[Finding]:
    return [f for f in find_recipient_statements(text, "t") if f.category == cat.RECIPIENT]


def phones(text: str) -> list[Finding]:
    return find_pager_numbers(text, "t")


def old_ages(text: str) -> list[Finding]:
    return [f for f in find_ages(text, "t") if f.reason == "age over 89"]


def expand(cases: list[Case]) -> list[object]:
    return [pytest.param(CASES[name](case.text),
                         None if case.expected is None else CASES[name](case.expected),
                         id=f"{name}:{case.text[:40]}")
            for case in cases for name in case.cases]


def check(found: list[Finding], expected: str | None) -> None:
    texts = [f.text for f in found]
    if expected is None:
        assert texts == []
    else:
        assert any(expected in t for t in texts), texts


# --- people: clinicians, patients and relatives from cue words --------------------------

PEOPLE = [
    Case("Spoke with Dr Halvorsen about the plan", "Halvorsen"),
    Case("Paged RN Bettencourt re low urine output", "Bettencourt"),
    Case("Dr. Okafor aware of the labs", "Okafor"),
    Case("Mary O'Neil NP notified", "Mary O'Neil"),
    Case("Daughter Ellen called this evening", "Ellen"),
    Case("Dtr Ellen at bedside", "Ellen"),
    Case("Son Marcus called for an update", "Marcus"),
    Case("Discussed with attending Kowalczyk", "Kowalczyk"),
    Case("Seen by J. Halloran-PT this morning", "J. Halloran"),
    Case("Wife Dolores and sister at bedside", "Dolores"),
    Case("Keep Romero family aware of the plan", "Romero"),
    Case("Nsg (d. Renna and j. Brannigan) verified the cash", "j. Brannigan"),
    Case("Case management contacts Karen Ann Yanulis", "Karen Ann Yanulis"),
    Case("Mr. Pellegrino resting comfortably", "Pellegrino"),
    Case("Drs Joseph and Robbinson in to see pt", "Robbinson"),
    Case("Sons Smokey, Morris and Roger visited", "Roger"),
]
PEOPLE_NEAR_MISSES = [
    Case("Son called for an update", None),
    Case("Per protocol heparin drip titrated", None),
    Case("Spoke with team about the plan", None),
    Case("Seen by hospitalist this morning", None),
    Case("Patient family at bedside", None),
    Case("Discussed with ICU resident", None),
    Case("MD aware of the low pressures", None),
    Case("Wife and sister at bedside", None),
    Case("Pt will need help with meals", None),
]


@pytest.mark.parametrize("text,expected", expand(PEOPLE + PEOPLE_NEAR_MISSES))
def test_people_in_every_case(text: str, expected: str | None) -> None:
    check(people(text), expected)


# --- dates: every element tied to care; times, doses and ratios are not dates ------------

DATES = [
    Case("Cath on 4/17 showed three vessel disease", "4/17"),
    Case("F/U 6/2 with cardiology", "6/2"),
    Case("Cx from 11-3 grew MRSA", "11-3"),
    Case("Last used in Jun", "Jun"),
    Case("Stopped in Sept. per family", "Sept"),
    Case("Admitted March of 1993 for a CVA", "March of 1993"),
    Case("Night of 1->2 Nov, 96", "1->2 Nov, 96"),
    Case("Labs on10/14/82 were normal", "10/14/82"),
    Case("Since May 3 on heparin", "May 3"),
    Case("Seen in June Cardiology clinic", "June"),
    Case("Nursing progress note 21 Apr, 21", "21 Apr, 21"),
    Case("PMH: CVA in 94 and 00", "00"),
    Case("s/p CABG '95", "95"),
    Case("Discharged on the 11th", "11th"),
]
DATE_NEAR_MISSES = [
    Case("BP 120/80 and HR 72", None),
    Case("Give 2/3 of the dose", None),
    Case("PEEP 5/5 on the vent", None),
    Case("Pain 5-10 all shift", None),
    Case("Labs 7.5/3.5/437 this am", None),
    Case("Pt may need a repeat echo", None),
    Case("Call back at 2pm", None),
    Case("Decreased to 1/2 NS at 75", None),
]


@pytest.mark.parametrize("text,expected", expand(DATES + DATE_NEAR_MISSES))
def test_dates_in_every_case(text: str, expected: str | None) -> None:
    found = [f for f in dates(text) if f.reason != "year only"]
    check(found, expected)


@pytest.mark.parametrize("text,expected", expand([
    Case("Follow up with Jan Kowalski next week", "Jan Kowalski", ("as-written",)),
]))
def test_a_month_word_before_a_surname_is_a_first_name(text: str, expected: str) -> None:
    # In capitals or lower case "JAN KOWALSKI" cannot be told from "JAN 5": a date wins.
    assert not [f for f in find_care_dates(text, "t") if f.text == "Jan"]
    assert any(f.text.startswith("Jan") for f in people(text))


# --- places: facilities, wards and towns ------------------------------------------------

PLACES = [
    Case("Transfer to St. Brendan's tomorrow", "St. Brendan's"),
    Case("Came from Westbury 4 this morning", "Westbury 4"),
    Case("Tx to MW for cath", "MW"),
    Case("Admitted from Holy Cross Hospital", "Holy Cross Hospital"),
    Case("Discharged to Keswick nursing home", "Keswick nursing home"),
    Case("Lives at 19 Clover St. in Lansdowne", "Lansdowne"),
    Case("Admitted to Calvert Hospiatal after a fall", "Calvert Hospiatal"),
    Case("Son lives in Towson", "Towson"),
    # A capitals code before "Hospital" is a name only when case shows it.
    Case("Pt admitted from MD Hospital at 1900", "MD Hospital", ("as-written",)),
]
PLACE_NEAR_MISSES = [
    Case("Went home with family", None),
    Case("Seen in the outpatient clinic", None),
    Case("Was hospitalized last year", None),
    Case("Johanna shouted at Gary", None),
    Case("Transfer to the floor when stable", None),
    Case("Sent to CT for a head scan", None),
    Case("Seen by hospice team", None),
]


@pytest.mark.parametrize("text,expected", expand(PLACES + PLACE_NEAR_MISSES))
def test_places_in_every_case(text: str, expected: str | None) -> None:
    check(places(text), expected)


# --- health information: clinical abbreviations, procedures, drugs ----------------------

HEALTH = [
    Case("s/p CABG x3", "CABG"),
    Case("Hx of CHF", "CHF"),
    Case("Given 2 units PRBC", "PRBC"),
    Case("ETT in good position", "ETT"),
    Case("Remains on vanco", "vanco"),
    Case("NSTEMI on admission", "NSTEMI"),
    Case("Insulin drip at 4 units", "Insulin"),
    Case("Heparin gtt held", "Heparin"),
    Case("History of gastric bypass", "gastric bypass"),
    Case("Knee replacement in the spring", "Knee replacement"),
    Case("Due for a colonoscopy", "colonoscopy"),
    Case("Started on warfarin", "warfarin"),
    # Two-letter acronyms are words in lower case ("2 mi walk"): capitals only.
    Case("r/o MI", "MI", ("as-written", "upper")),
    Case("Echo showed severe AS", "AS", ("as-written", "upper")),
]
HEALTH_NEAR_MISSES = [
    Case("Husband called this am as well as a brother", None),
    Case("Walked 2 mi today", None, ("as-written", "lower")),
    Case("Mr Jones called back", None),
    Case("Maybe it is under Magda K. Bjorklund", None, ("as-written",)),
]


@pytest.mark.parametrize("text,expected", expand(HEALTH + HEALTH_NEAR_MISSES))
def test_health_terms_in_every_case(text: str, expected: str | None) -> None:
    check(health(text), expected)


# --- the recipient, pagers, old ages ------------------------------------------------------

OTHERS: list[tuple[Callable[[str], list[Finding]], Case]] = [
    (recipient, Case("Your biopsy results are ready", "Your biopsy results are ready")),
    (recipient, Case("Your A1C was 9.1 last week", "Your A1C was 9")),
    (recipient, Case("Your prescription for lisinopril is ready", "Your prescription")),
    (recipient, Case("Get your flu shot this winter", None)),
    (recipient, Case("Know your A1C target", None)),
    (phones, Case("Please page pager #40213", "40213")),
    (phones, Case("Call me at x4417", "4417")),
    (phones, Case("Gave 40213 units", None)),
    (old_ages, Case("92 yo woman admitted", "92")),
    (old_ages, Case("Age 95, lives alone", "95")),
    (old_ages, Case("72 yo woman admitted", None)),
]


@pytest.mark.parametrize("finder,text,expected", [
    pytest.param(finder, CASES[name](case.text),
                 None if case.expected is None else CASES[name](case.expected),
                 id=f"{finder.__name__}-{name}:{case.text[:30]}")
    for finder, case in OTHERS for name in case.cases])
def test_recipient_pagers_and_ages_in_every_case(
        finder: Callable[[str], list[Finding]], text: str, expected: str | None) -> None:
    check(finder(text), expected)
