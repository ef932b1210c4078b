"""Contact identifiers: e-mail addresses, URLs, IP addresses, telephone, fax and pager numbers.

Shape alone is weak evidence for numbers, so a phone-like digit group needs a separator
pattern typical of phone numbers or a context word (``phone``, ``cell``, ``pager``...).
"""

from __future__ import annotations

import ipaddress
import re

import phonenumbers

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.findings import Finding
from phigate.phi_scanner.recognizers.context import after, before, has_cue, line_label

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
    # libphonenumber knows the numbering plans; a US-region match is strong evidence. Its
    # matcher is slow Python, so it reads only the lines with seven digits in them.
    for line_start, line in _digit_lines(text):
        for match in phonenumbers.PhoneNumberMatcher(line, "US",
                                                     leniency=phonenumbers.Leniency.VALID):
            start, end = line_start + match.start, line_start + match.end
            if _measurement_series(text, start, match.raw_string):
                continue
            taken.append((start, end))
            results.append(_phone_finding(text, part, start, end, 0.9,
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
        if _looks_like_date_or_number(value) or _measurement_series(text, start, value):
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


def _digit_lines(text: str) -> list[tuple[int, str]]:
    lines = []
    position = 0
    for line in text.split("\n"):
        if SEVEN_DIGITS.search(line):
            lines.append((position, line))
        position += len(line) + 1
    return lines


def _phone_finding(text: str, part: str, start: int, end: int, confidence: float,
                   reason: str) -> Finding:
    context = line_label(text, start)[-20:] + " " + before(text, start, 15) + after(text, end, 8)
    category = cat.FAX_NUMBER if has_cue(context, FAX_CUES) else cat.PHONE_NUMBER
    return Finding(category, text[start:end], start, end, part, confidence, reason)


def _looks_like_date_or_number(value: str) -> bool:
    if re.fullmatch(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}", value):
        return True  # 2024-03-01, 03/01/2024
    return bool(re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d{1,2}", value))


# "ABG 7.38/59/62", "SVR 1500-2250", "TD-5.15/2.51/1150": series of measurements.
_MEASUREMENT_BEFORE = re.compile(
    r"(?i)\b(?:abg|vbg|svr|pvr|fick|cvp|pap|sats?|peep|svo2)\W{0,3}$")


def _measurement_series(text: str, start: int, value: str) -> bool:
    return "/" in value or bool(re.match(r"\d\.\d{2}\b", value)) or bool(
        _MEASUREMENT_BEFORE.search(text[max(0, start - 12):start]))


def _phone_grouping(value: str) -> bool:
    """Typical groupings: 555-123-4567, 555.123.4567, 020 7946 0958, 71-33-52-22."""
    groups = re.findall(r"\d+", value)
    return len(groups) >= 2 and all(2 <= len(g) <= 4 for g in groups[1:])




# Pager and extension numbers: four to six digits after their label ("pager #40213", "x4417",
# "PG 33445", "beeper number 55037"); too short for a phone number's shape.
PAGER = re.compile(
    r"(?i)\b(?:(?:pager|beeper|pgr|pg|bpr|page|ext|extension)[ \t:#.]*(?:number|no\.?|num)?"
    r"[ \t:#.]*|x[ \t]?)(\d{4,6})\b(?![.,]\d|[ \t]*(?:%|mg|mcg|ml|cc|units?))")


# Ten or eleven digits alone in brackets, in whatever groups ("(240444-1243)"): a phone
# number written in haste.
BRACKETED_DIGITS = re.compile(r"\(((?:[2-9]\d)[\d \t.-]{7,14}\d)\)")


def find_pager_numbers(text: str, part: str) -> list[Finding]:
    results = [Finding(cat.PHONE_NUMBER, m.group(1), m.start(1), m.end(1), part, 0.8,
                       "pager or extension number") for m in PAGER.finditer(text)]
    for m in BRACKETED_DIGITS.finditer(text):
        if 10 <= sum(ch.isdigit() for ch in m.group(1)) <= 11:
            results.append(Finding(cat.PHONE_NUMBER, m.group(1), m.start(1), m.end(1), part,
                                   0.6, "bracketed phone digits"))
    return results
