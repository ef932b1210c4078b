"""Numbers that identify a person: SSNs, labelled record/plan/account/licence/vehicle/device
numbers, payment cards, ZIP codes and ages.

Shape alone is weak evidence for numbers (an invoice number looks like many things), so
number-like identifiers need a context word (``SSN``, ``MRN``, ``member ID``...) or a
validity rule.
"""

from __future__ import annotations

import re

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.findings import Finding
from phigate.phi_scanner.recognizers.context import before, has_cue

# --- Social Security numbers -------------------------------------------------------------

SSN = re.compile(r"(?<![\w-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\w-])")
SSN_CUES = ("ssn", "ss#", "social security", "social security number", "social", "ss no",
            "taxpayer", "tin", "itin")


def valid_ssn(area: str, group: str, serial: str) -> bool:
    """SSA rules: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    return (area not in ("000", "666") and not area.startswith("9") and group != "00"
            and serial != "0000" and f"{area}{group}{serial}" not in _ADVERTISED_SSNS)


# Numbers printed on sample cards and in ads, never issued to a person.
_ADVERTISED_SSNS = frozenset({"078051120", "219099999", "123456789"})


def find_ssns(text: str, part: str) -> list[Finding]:
    results = []
    for m in SSN.finditer(text):
        area, separator, group, serial = m.groups()
        if not valid_ssn(area, group, serial):
            continue
        cue = has_cue(before(text, m.start(), 40), SSN_CUES)
        if not separator and not cue:
            continue  # nine bare digits are an SSN only when labelled as one
        confidence = 0.95 if cue else 0.6
        results.append(Finding(cat.US_SSN, m.group(), m.start(), m.end(), part, confidence,
                               "SSN pattern with context" if cue else "SSN pattern"))
    return results


# --- Labelled identifiers: MRN, health plan, account, licence, vehicle, device --------------

ID_VALUE = r"[:#\s]*(?:no\.?|number|num|nr|id)?[:#\s.]*([A-Z0-9][A-Z0-9-]{3,19}[0-9][A-Z0-9]*)"
LABELLED_IDS: list[tuple[str, re.Pattern[str]]] = [
    (cat.MEDICAL_RECORD_NUMBER, re.compile(
        r"\b(?:MRN|medical record|med\.? rec\.?|chart|patient (?:id|number|#)|EMR|EHR)"
        + ID_VALUE, re.IGNORECASE)),
    (cat.HEALTH_PLAN_NUMBER, re.compile(
        r"\b(?:member|subscriber|beneficiary|policy|insurance|medicaid|medicare|plan|group|"
        r"MBI|HICN)(?: id| identification)?" + ID_VALUE, re.IGNORECASE)),
    (cat.ACCOUNT_NUMBER, re.compile(
        r"\b(?:account|acct|a/c|billing|invoice|statement|claim|card)" + ID_VALUE,
        re.IGNORECASE)),
    (cat.LICENSE_NUMBER, re.compile(
        r"\b(?:licen[cs]e|DEA|NPI|certificate|permit|passport|driver'?s licen[cs]e)"
        + ID_VALUE, re.IGNORECASE)),
    (cat.VEHICLE_ID, re.compile(
        r"\b(?:VIN|vehicle|license plate|licence plate|plate)" + ID_VALUE, re.IGNORECASE)),
    (cat.DEVICE_ID, re.compile(
        r"\b(?:serial|S/N|SN|device|implant|pacemaker|pump|UDI|IMEI|lot)" + ID_VALUE,
        re.IGNORECASE)),
]
# Invoices and statements identify a bill rather than a person; still an account number
# under Safe Harbor, but weaker evidence of an individual.
_WEAK_ACCOUNT_WORDS = ("invoice", "statement", "claim")


def find_labelled_ids(text: str, part: str) -> list[Finding]:
    results = []
    for category, pattern in LABELLED_IDS:
        for m in pattern.finditer(text):
            value = m.group(1)
            if not any(ch.isdigit() for ch in value) or sum(ch.isdigit() for ch in value) < 4:
                continue  # "Member Services", "plan year" are not identifiers
            label = m.group()[: m.start(1) - m.start()].lower()
            confidence = 0.9
            if category == cat.ACCOUNT_NUMBER and any(w in label for w in _WEAK_ACCOUNT_WORDS):
                confidence = 0.6
            results.append(Finding(category, value, m.start(1), m.end(1), part, confidence,
                                   f"labelled {category.lower().replace('_', ' ')}"))
    results.extend(_find_vins(text, part))
    results.extend(_find_payment_cards(text, part))
    return results


VIN = re.compile(r"\b[A-HJ-NPR-Z0-9]{17}\b")
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_VIN_VALUES = {**{str(d): d for d in range(10)},
               **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
               **dict(zip("JKLMN", range(1, 6), strict=True)), "P": 7, "R": 9,
               **dict(zip("STUVWXYZ", range(2, 10), strict=True))}


def _find_vins(text: str, part: str) -> list[Finding]:
    results = []
    for m in VIN.finditer(text):
        vin = m.group()
        if vin.isdigit() or vin.isalpha():
            continue
        total = sum(_VIN_VALUES[ch] * w for ch, w in zip(vin, _VIN_WEIGHTS, strict=True)) % 11
        if vin[8] == ("X" if total == 10 else str(total)):
            results.append(Finding(cat.VEHICLE_ID, vin, m.start(), m.end(), part, 0.85,
                                   "VIN with valid check digit"))
    return results


CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _find_payment_cards(text: str, part: str) -> list[Finding]:
    results = []
    for m in CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            results.append(Finding(cat.ACCOUNT_NUMBER, m.group(), m.start(), m.end(), part,
                                   0.85, "payment card number (Luhn)"))
    for m in IBAN.finditer(text):
        results.append(Finding(cat.ACCOUNT_NUMBER, m.group(), m.start(), m.end(), part, 0.8,
                               "IBAN pattern"))
    return results


# --- ZIP codes and ages ----------------------------------------------------------------

ZIP = re.compile(r"(?<![\w$#.,-])\d{5}(?:-\d{4})?(?![\w%-]|\.\d|,\d)")
POSTAL_LABELLED = re.compile(
    r"\b(?:zip|zip code|postal code|postcode|post code)\b[:\s]*([A-Z0-9][A-Z0-9 -]{2,9}[A-Z0-9])",
    re.IGNORECASE)
# "Denmark 35018", "Aalborg NO 9100" at the end of a line: European postal codes (4-5 digits,
# not a year).
POSTCODE_AFTER_PLACE = re.compile(
    r"(?m)\b[A-ZÀ-Þ][\wÀ-ÿ]+(?: [A-Z]{2})?[ \t]+(?!(?:19|20)\d\d\b)(\d{4,5})[ \t]*$")
US_STATE_BEFORE = re.compile(r"\b[A-Z]{2}\s*$")


def find_zip_codes(text: str, part: str) -> list[Finding]:
    results = []
    for m in POSTAL_LABELLED.finditer(text):
        results.append(Finding(cat.ZIP_CODE, m.group(1), m.start(1), m.end(1), part, 0.9,
                               "labelled postal code"))
    for m in ZIP.finditer(text):
        if any(f.start == m.start() for f in results):
            continue
        preceding = text[max(0, m.start() - 25):m.start()]
        if US_STATE_BEFORE.search(preceding.rstrip(", ")):
            confidence, reason = 0.9, "ZIP code after a state"
        elif has_cue(preceding.lower(), ("zip", "postal", "code")):
            confidence, reason = 0.85, "labelled ZIP code"
        elif re.search(r"[A-Za-z]{3,}[ ,\n]*$", preceding) and (
                m.end() == len(text) or "\n" in text[m.end():m.end() + 2]):
            confidence, reason = 0.5, "five digits ending an address line"
        else:
            continue  # a bare five-digit number: an order, a count, a code
        results.append(Finding(cat.ZIP_CODE, m.group(), m.start(), m.end(), part, confidence,
                               reason))
    for m in POSTCODE_AFTER_PLACE.finditer(text):
        if any(f.start == m.start(1) for f in results):
            continue
        results.append(Finding(cat.ZIP_CODE, m.group(1), m.start(1), m.end(1), part, 0.5,
                               "postal code after a place name"))
    return results


AGE_PATTERN = re.compile(
    r"\b(?:(?:aged?|turn(?:ed|s)?|is|was|at the age of)\s+(\d{1,3})\b(?!\s*(?:%|percent|mg|kg|"
    r"lb|minutes|days|hours))|(\d{1,3})[- ](?:years?|yrs?|y/o|yo)[- ]?(?:old)?\b|"
    r"(\d{1,3})\s?(?:y/o|yo)\b)", re.IGNORECASE)
AGE_CUES = ("age", "aged", "turn", "turned", "turns", "old", "birthday", "year-old")


# "98 s/p left hip fx", "94 yo gentleman": an age opening a note, before its usual words.
AGE_OPENING = re.compile(
    r"(?im)^[ \t]*(\d{2,3})[ \t]+(?:s/p|y\.?o\.?|y/o|w/|with|male|female|man|woman|gentleman|"
    r"lady|m|f)\b")


def find_ages(text: str, part: str) -> list[Finding]:
    """Ages; over 89 they are identifiers (Safe Harbor), younger ones are reported weakly."""
    results = []
    for m in AGE_PATTERN.finditer(text):
        index = next(i for i in (1, 2, 3) if m.group(i))
        value = int(m.group(index))
        start, end = m.start(index), m.end(index)
        if value > 125:
            continue
        phrase = m.group().lower()
        if index == 1 and not any(cue in phrase for cue in ("age", "turn")):
            # "is 45" needs "years old" after it to be an age
            if not re.match(r"\s*(?:years?|yrs?)(?:[- ]old)?", text[end:end + 12],
                            re.IGNORECASE):
                continue
        over_89 = value > 89
        results.append(Finding(cat.AGE, m.group(index), start, end, part,
                               0.9 if over_89 else 0.6,
                               "age over 89" if over_89 else "age (89 or under)"))
    for m in AGE_OPENING.finditer(text):
        if 89 < int(m.group(1)) <= 125:
            results.append(Finding(cat.AGE, m.group(1), m.start(1), m.end(1), part, 0.85,
                                   "age over 89"))
    return results


