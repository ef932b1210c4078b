"""Pattern recognizers for the HIPAA identifiers that have a recognisable shape.

Each ``find_*`` function takes a text and its part name and returns findings. Shape alone is
weak evidence for numbers (an invoice number looks like many things), so number-like
identifiers need a context word (``SSN``, ``MRN``, ``member ID``...) or a validity rule.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

import phonenumbers

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.context import after, before, has_cue, line_label
from phigate.phi_scanner.findings import Finding

Recognizer = Callable[[str, str], list[Finding]]

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b")
URL_PATTERN = re.compile(
    r"\b(?:https?://|www\.)[^\s<>\"')\]]+[^\s<>\"')\].,;:!?]", re.IGNORECASE)
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4}(?![\w:])")


def find_emails(text: str, part: str) -> list[Finding]:
    return [Finding(cat.EMAIL_ADDRESS, m.group(), m.start(), m.end(), part, 0.95, "email pattern")
            for m in EMAIL.finditer(text)]


def find_urls(text: str, part: str) -> list[Finding]:
    return [Finding(cat.URL, m.group(), m.start(), m.end(), part, 0.9, "URL pattern")
            for m in URL_PATTERN.finditer(text)]


def find_ip_addresses(text: str, part: str) -> list[Finding]:
    results = []
    for pattern in (IPV4, IPV6):
        for m in pattern.finditer(text):
            try:
                ipaddress.ip_address(m.group())
            except ValueError:
                continue
            results.append(Finding(cat.IP_ADDRESS, m.group(), m.start(), m.end(), part, 0.9,
                                   "IP address pattern"))
    return results


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


# --- Telephone and fax --------------------------------------------------------------------

# Digit groups as people write them: "555-123-4567", "07700 063 966", "0393 1144137" (a
# trunk code, then the local number in one block), never across a line break; a label may
# follow with a hyphen ("788-063-Office").
PHONE_SHAPE = re.compile(
    r"(?<![\w.+/-])(?:\+\d{1,3}[ \t.-]?)?(?:\(0?\d{1,4}\)[ \t]?|\d{1,5}[ \t.-])?"
    r"\d{2,4}(?:[ \t.-]\d{2,4}){0,4}(?:[ \t.-]\d{5,8})?(?:[ \t]?(?:x|ext\.?)[ \t]?\d{1,5})?"
    r"(?![\w/]|-\d)")
PHONE_CUES = ("phone", "tel", "telephone", "call", "mobile", "cell", "fax", "desk", "office",
              "home", "work", "text", "contact", "reach", "number", "dial", "answering", "ph",
              "pager", "sms", "whatsapp", "on", "at", "registered")
FAX_CUES = ("fax", "facsimile")
SEVEN_DIGITS = re.compile(r"\d(?:\D{0,3}\d){6}")
BEFORE_STREET_NAME = re.compile(r"[ \t]+(?:[A-ZÀ-Þ][\wÀ-ÿ-]+|\w+[ \t]+(?i:street|avenue|road))")


def find_phone_numbers(text: str, part: str) -> list[Finding]:
    results: list[Finding] = []
    taken: list[tuple[int, int]] = []
    if not SEVEN_DIGITS.search(text):
        return results  # no phone number has fewer than seven digits; skip the costly matcher
    # libphonenumber knows the numbering plans; a US-region match is strong evidence.
    for match in phonenumbers.PhoneNumberMatcher(text, "US", leniency=phonenumbers.Leniency.VALID):
        taken.append((match.start, match.end))
        results.append(_phone_finding(text, part, match.start, match.end, 0.9,
                                      "valid phone number (libphonenumber)"))
    # International and local formats without a country code: a digit-group shape plus a
    # label or a separator pattern typical of phone numbers.
    for m in PHONE_SHAPE.finditer(text):
        start, end = m.start(), m.end()
        if any(s < end and start < e for s, e in taken):
            continue
        value = m.group()
        digits = re.sub(r"\D", "", value.split("x")[0].split("ext")[0])
        if not 7 <= len(digits) <= 15:
            continue
        separated = bool(re.search(r"\d[\s.()-]+\d", value))
        label = line_label(text, start)[-30:] + " " + before(text, start, 25)
        cue = has_cue(label, PHONE_CUES) or has_cue(after(text, end, 12), FAX_CUES + (
            "office", "fax", "mobile", "home", "cell"))
        if _looks_like_date_or_number(value):
            continue
        if len(re.findall(r"\d+", value)) == 2 and BEFORE_STREET_NAME.match(text, end):
            continue  # "at 28919 136 Filadelfeos Str.": building and house number
        if value.startswith("+") or (separated and cue):
            confidence = 0.85
        elif cue and len(digits) >= 9:
            confidence = 0.7
        elif separated and _phone_grouping(value):
            confidence = 0.55
        else:
            continue
        results.append(_phone_finding(text, part, start, end, confidence, "phone number shape"))
    return results


def _phone_finding(text: str, part: str, start: int, end: int, confidence: float,
                   reason: str) -> Finding:
    context = line_label(text, start)[-20:] + " " + before(text, start, 15) + after(text, end, 8)
    category = cat.FAX_NUMBER if has_cue(context, FAX_CUES) else cat.PHONE_NUMBER
    return Finding(category, text[start:end], start, end, part, confidence, reason)


def _looks_like_date_or_number(value: str) -> bool:
    if re.fullmatch(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}", value):
        return True  # 2024-03-01, 03/01/2024
    return bool(re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d{1,2}", value))


def _phone_grouping(value: str) -> bool:
    """Typical groupings: 555-123-4567, 555.123.4567, 020 7946 0958, 71-33-52-22."""
    groups = re.findall(r"\d+", value)
    return len(groups) >= 2 and all(2 <= len(g) <= 4 for g in groups[1:])


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
    return results


PATTERN_RECOGNIZERS: tuple[Recognizer, ...] = (
    find_emails, find_urls, find_ip_addresses, find_ssns, find_labelled_ids,
    find_phone_numbers, find_zip_codes, find_ages,
)
