"""Dates, with how strongly each is tied to a person.

Safe Harbor removes every date element (except the year) tied to an individual: birth,
admission, discharge, death, service and appointment dates. A date on its own ("the office
is closed on July 4") is not. The finding's ``reason`` says which: the verdict weighs
``date of birth`` and ``person-related date`` far above ``date``.
"""

from __future__ import annotations

import bisect
import re

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.findings import Finding
from phigate.phi_scanner.recognizers.context import before, has_cue

MONTHS = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
          r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
WEEKDAYS = r"(?:Mon|Tues?|Wed(?:nes)?|Thu(?:rs)?|Fri|Sat(?:ur)?|Sun)(?:day)?"
TIME = r"(?:\s*(?:at\s+)?\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]\.?m\.?)?)?"

NUMERIC_DATE = re.compile(
    r"(?<![\d/.-])(?<![A-Za-z]\d)(?:\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})|\d{4}-\d{1,2}-\d{1,2})"
    r"(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?(?![\w/-]|\.\d)")
# "March 3, 2025", "Mar 3rd", "3 March 2025", "Tuesday, March 3"; "May" alone is not a date.
WORD_DATE = re.compile(
    rf"\b(?:{WEEKDAYS},?\s+)?(?:{MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?|"
    rf"\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{MONTHS}\.?(?:,?\s+\d{{4}})?|"
    rf"{MONTHS}\.?,?\s+\d{{4}}){TIME}\b")
WEEKDAY_ONLY = re.compile(
    rf"\b(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b{TIME}")
YEAR = re.compile(r"(?<![\w$#.,/-])(?:19|20)\d{2}(?![\w%/-]|\.\d|,\d)")

BIRTH_CUES = ("dob", "d.o.b", "d.o.b.", "born", "birth", "birthday", "date of birth",
              "birthdate", "b.")
PERSON_DATE_CUES = (
    "admitted", "admission", "admit", "discharged", "discharge", "died", "death", "deceased",
    "expired", "appointment", "appt", "visit", "seen", "date of service", "dos",
    "procedure", "surgery", "scheduled", "collected", "test date", "vaccinated", "injury",
    "onset", "diagnosed", "last seen", "encounter", "service", "follow-up", "follow up",
    "your", "since", "treated", "hospitalized", "delivered", "referred", "exam", "refill",
)


class Spans:
    """Non-overlapping spans kept sorted, so each check is a bisection: a text full of dates
    (a hostile attachment) must not make the scan quadratic."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def overlaps(self, start: int, end: int) -> bool:
        # Only the last span starting before ``end`` can overlap: the spans are disjoint.
        index = bisect.bisect_left(self._starts, end) - 1
        return index >= 0 and self._ends[index] > start

    def contains(self, start: int, end: int) -> bool:
        index = bisect.bisect_right(self._starts, start) - 1
        return index >= 0 and self._ends[index] >= end

    def add(self, start: int, end: int) -> None:
        index = bisect.bisect_left(self._starts, start)
        self._starts.insert(index, start)
        self._ends.insert(index, end)


def find_dates(text: str, part: str) -> list[Finding]:
    results: list[Finding] = []
    spans = Spans()
    for pattern in (NUMERIC_DATE, WORD_DATE):
        for m in pattern.finditer(text):
            if spans.overlaps(m.start(), m.end()):
                continue
            if pattern is NUMERIC_DATE and not _plausible_numbers(m.group()):
                continue  # "03.93.92" (a phone number's groups): no month 93
            if pattern is NUMERIC_DATE and len(set(re.findall(r"[/.-]", m.group()[:8]))) > 1:
                continue  # "5.6/67": a measurement, not a date (separators are uniform)
            spans.add(m.start(), m.end())
            results.append(date_finding(text, part, m.start(), m.end(), 0.9))
    for m in WEEKDAY_ONLY.finditer(text):
        if not spans.overlaps(m.start(), m.end()):
            spans.add(m.start(), m.end())
            results.append(date_finding(text, part, m.start(), m.end(), 0.5))
    for m in YEAR.finditer(text):
        if spans.contains(m.start(), m.end()):
            continue
        # A year alone is not a Safe Harbor identifier; reported for completeness only.
        results.append(Finding(cat.DATE, m.group(), m.start(), m.end(), part, 0.4,
                               "year only"))
    return results


def _plausible_numbers(value: str) -> bool:
    """Day and month in either order (03/14/2025 or 14.03.2025), or ISO year-month-day."""
    fields = [int(f) for f in re.findall(r"\d+", value)[:3]]
    if len(str(fields[0])) == 4 or value[:4].isdigit():
        return 1 <= fields[1] <= 12 and 1 <= fields[2] <= 31
    first, second = fields[0], fields[1]
    return 1 <= min(first, second) <= 12 and 1 <= max(first, second) <= 31


def date_finding(text: str, part: str, start: int, end: int, confidence: float) -> Finding:
    # The cue must be in the same sentence: "DOB: 1/2/1950. Seen on 3/4/2025" has two dates.
    window = before(text, start, 50)
    sentence_start = max(window.rfind(". "), window.rfind("\n"), window.rfind("; "))
    context = window[sentence_start + 1:]
    if has_cue(context, BIRTH_CUES):
        reason = "date of birth"
    elif has_cue(context, PERSON_DATE_CUES):
        reason = "person-related date"
    else:
        reason = "date"
    return Finding(cat.DATE, text[start:end], start, end, part, confidence, reason)
