"""Date elements as clinical text writes them: ``4/17``, ``F/U 6/2``, ``cx from 11-3``, ``jun``,
``SEPT.``, ``MARCH OF 1993``, ``s/p CABG '95``.

In a clinical note every date element is about the patient's care (Safe Harbor removes all
of them but the year), so in a text that reads as a clinical note the verdict weighs them
as care dates (see :mod:`phigate.phi_scanner.verdict`); elsewhere their cue words decide,
as for every date. What must not be read as a date: blood pressures and vent settings
(``120/80``, ``PEEP 5/5``), fractions and
doses (``2/3 of the dose``, ``1/2 NS``), ratios and lab series (``7.5/3.5/437``), times.
The month words are matched in any case; the ones that are also ordinary words or
abbreviations (``MAY``, ``MAR`` the medication record, ``DEC`` for decreased) only count
next to a day or a year, or after "in", "of", "since"... .
"""

from __future__ import annotations

import re

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.findings import Finding
from phigate.phi_scanner.recognizers.dates import date_finding

REASON_YEAR = "care year"

# M/D and M/D/YY(YY); the day and month are checked in code. Not inside a longer run of
# numbers ("7.5/3.5/437", "10/5/5"), not a decimal, not followed by a unit.
MONTH_DAY = re.compile(
    r"(?<![\w./])(?<!\d-)(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?(?![\w/]|-\d|\.\d|[ \t]*(?:%|"
    r"mg|mcg|ml|cc|units?|u\b|mmhg|cmh2o|of\b|ns\b|strength|tab|assist|up\b|way\b|cup|amp))",
    re.IGNORECASE)
# M-D only after a word that introduces a date ("cx from 11-3", "since 6-2"): elsewhere
# "5-10" is a range.
CUED_MONTH_DAY = re.compile(
    r"(?i)\b(?:on|from|since|dated|until|thru|through|of|cx|c/s|d/c'?d|started|begun|"
    r"stopped|placed|last|next|f/u)[ \t]+(\d{1,2})-(\d{1,2})(?![\w/.-]|[ \t]*(?:%|mg|mcg|ml|"
    r"cc|units?|hrs?|hours?|days?|min|l\b|liters?|times|x\b))")
# What stands before a fraction or a setting, not a date: "PEEP 5/5", "PS 10/5", "BP 90/60".
NOT_DATE_BEFORE = re.compile(
    r"(?i)\b(?:peep|psv?|cpap|bipap|simv|imv|a/c|vent|settings?|fio2|ipap|epap|bp|b/p|sbp|"
    r"map|hr|rr|abp|nbp|pap|pas|pa|cvp|ratio|x|sats?|grade|strength|gtts?|rass|pain|"
    r"score|level|rate|tv|vt|mcg|mg|ml|cc)[ \t:=]*$")
# "the 11th": a day of the month.
ORDINAL_DAY = re.compile(r"(?i)\b(?:the|on)[ \t]+(\d{1,2}(?:st|nd|rd|th))\b")

MONTH_NAMES = ("january|february|march|april|june|july|august|september|october|november|"
               "december")
SAFE_ABBREVIATIONS = "jan|feb|apr|jun|jul|aug|sept?|oct|nov"
#: Month words that are also other words: a month only with a day or a year beside them.
AMBIGUOUS_MONTHS = "may|mar|dec"
DAY = r"\d{1,2}(?:st|nd|rd|th)?"
# A night shift's two days before a month: "1->2 nov, 96", "30-31 OCT".
DAY_RANGE = r"\d{1,2}[ \t]*(?:->|-|/|to)[ \t]*"
YEAR_PART = r"(?:'?\d{2}|\d{4})"
MONTH = rf"(?:{MONTH_NAMES}|{SAFE_ABBREVIATIONS}|{AMBIGUOUS_MONTHS})"
# "Mar 3", "3 mar", "MAY 2003", "nov, 96", "MARCH OF 1993", "Dec. 5th".
MONTH_WITH_NUMBER = re.compile(
    rf"(?i)\b(?:(?:{DAY_RANGE})?{DAY}[ \t]+(?:of[ \t]+)?{MONTH}\b\.?(?:,?[ \t]+{YEAR_PART}\b)?|"
    rf"{MONTH}\b\.?,?[ \t]+(?:of[ \t]+)?(?:{DAY}(?![\d:/])(?:,?[ \t]+{YEAR_PART}\b)?|"
    rf"{YEAR_PART}\b)(?![:/.]\d))")
# A month word on its own: "last used in jun", "sept." - not the ambiguous ones.
MONTH_ALONE = re.compile(rf"(?i)\b(?:{MONTH_NAMES}|{SAFE_ABBREVIATIONS})\b\.?")
# A capitalised word after a Title Case month word makes it a first name ("Jan Jílek"); a
# month, a weekday or a year after it does not.
NAME_AFTER = re.compile(
    rf"[ \t]+(?!(?i:{MONTH_NAMES}|{SAFE_ABBREVIATIONS}|(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*)\b)"
    r"[A-ZÀ-Þ][a-zß-ÿ]")
DATE_PREPOSITION = re.compile(r"(?i)\b(?:in|since|of|on|by|early|late|mid|last|next|during|"
                              r"until|thru|through)[ \t]+$")
# "in may", "since MAY", "early March": the ambiguous words after a date preposition.
CUED_AMBIGUOUS = re.compile(
    rf"(?i)\b(?:in|since|of|early|late|mid|last|next|during|until|thru|through)[ \t]+"
    rf"({AMBIGUOUS_MONTHS})\b(?![ \t]+(?:be|have|not|need|go|do|want|take|require|benefit|"
    rf"get|return|try|call|also|still|just|[a-z]+ed)\b)")
# A year with an apostrophe ("'92", "74'") or in a history list after a clinical word
# ("CABG 81", "MI in 94"); four-digit years after an event word.
APOSTROPHE_YEAR = re.compile(r"(?<![\w'])'(\d{2})\b(?![.:]\d)|(?<![\w.'])(\d{2})'(?![\w'])")
HISTORY_YEAR = re.compile(
    r"(?i)\b(?:s/p|dx|dx'?d|diagnosed|in|since|hx|h/o|mi|cva|cabg|redo|avr|mvr|ptca|stent|"
    r"pacer|ablation|chole|appy|tah|bso|surgery|repair|replacement|cardioversion)[ \t]+"
    r"(?:in[ \t]+)?((?:19|20)\d{2}s?|\d{2}(?!\d))(?![\w%/.:-]|[ \t]*(?:%|mg|mcg|cc|ml|units?|"
    r"mmhg|bpm|degrees|x\b|times|hrs?|min|yo|y/o|years?|yrs?))")
ANY_MONTH = re.compile(rf"(?i)\b{MONTH}\b")
DECADE = re.compile(r"(?i)\b(?:19|20)\d0'?s\b")
HISTORY_CONTEXT = re.compile(r"(?i)\b(?:pmh|hx|h/o|s/p|history|pmhx|psh)\b")


def find_care_dates(text: str, part: str) -> list[Finding]:
    results: list[Finding] = []
    if "/" in text:
        results.extend(_month_days(text, part))
    for m in CUED_MONTH_DAY.finditer(text):
        month, day = int(m.group(1)), int(m.group(2))
        if 1 <= month <= 12 and 1 <= day <= 31:
            results.append(_finding(text, part, m.start(1), m.end(2), 0.7))
    if ANY_MONTH.search(text):  # most text names no month: skip the costly patterns
        for m in MONTH_WITH_NUMBER.finditer(text):
            results.append(_finding(text, part, m.start(), m.end(), 0.9))
        for m in MONTH_ALONE.finditer(text):
            if (NAME_AFTER.match(text, m.end()) and m.group()[1:2].islower()
                    and not DATE_PREPOSITION.search(text[max(0, m.start() - 8):m.start()])):
                continue  # "Jan Jílek", "June Carter": a first name before a surname
            results.append(_finding(text, part, m.start(), m.end(), 0.7))
        for m in CUED_AMBIGUOUS.finditer(text):
            results.append(_finding(text, part, m.start(1), m.end(1), 0.6))
    for m in ORDINAL_DAY.finditer(text):
        if 1 <= int(re.sub(r"\D", "", m.group(1))) <= 31:
            results.append(_finding(text, part, m.start(1), m.end(1), 0.6))
    results.extend(_years(text, part))
    return results


# More years after a history year: "CVA in 94 and 00", "MI 1998, 2003".
MORE_YEARS = re.compile(
    r"(?i)[ \t]*(?:,|and|&|,[ \t]*and)[ \t]*((?:19|20)\d{2}|\d{2})\b(?![\w%/.:-])")


def _month_days(text: str, part: str) -> list[Finding]:
    results = []
    for m in MONTH_DAY.finditer(text):
        month, day = int(m.group(1)), int(m.group(2))
        # M/D, or M/YY in a history ("AVR 8/88"): a second number over 31 is a year
        if not (1 <= month <= 12 and (1 <= day <= 31 or (day > 31 and m.group(3) is None
                                                         and len(m.group(2)) == 2))):
            continue
        if m.group(3) is None and NOT_DATE_BEFORE.search(text[max(0, m.start() - 12):m.start()]):
            continue
        results.append(_finding(text, part, m.start(), m.end(), 0.85))
    return results


def _years(text: str, part: str) -> list[Finding]:
    results: list[Finding] = []
    if not HISTORY_CONTEXT.search(text) and "'" not in text:
        return results  # no history list and no "'92": the year rules cannot fire
    for m in APOSTROPHE_YEAR.finditer(text):
        index = 1 if m.group(1) else 2
        if index == 2 and not HISTORY_CONTEXT.search(text[max(0, m.start() - 200):m.start()]):
            continue  # "5'" is feet; a trailing apostrophe year needs a history list nearby
        results.append(_finding(text, part, m.start(index), m.end(index), 0.7, REASON_YEAR))
    for m in HISTORY_YEAR.finditer(text):
        value = m.group(1)
        if len(value) == 2 and not HISTORY_CONTEXT.search(
                text[max(0, m.start() - 200):m.start() + 1]):
            continue  # "MI 81" is a year only in a past history
        results.append(_finding(text, part, m.start(1), m.end(1), 0.6, REASON_YEAR))
        position = m.end(1)
        while more := MORE_YEARS.match(text, position):
            results.append(_finding(text, part, more.start(1), more.end(1), 0.6, REASON_YEAR))
            position = more.end(1)
    for m in DECADE.finditer(text):
        results.append(_finding(text, part, m.start(), m.end(), 0.6, REASON_YEAR))
    return results


def _finding(text: str, part: str, start: int, end: int, confidence: float,
             reason: str | None = None) -> Finding:
    """The date's tie to a person comes from its cue words, as for every date (dates.py)."""
    value = text[start:end].rstrip(".")
    if reason is None:
        return date_finding(text, part, start, start + len(value), confidence)
    return Finding(cat.DATE, value, start, start + len(value), part, confidence, reason)
