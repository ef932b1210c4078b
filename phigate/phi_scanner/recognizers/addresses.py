"""Geographic units smaller than a state: street addresses, P.O. boxes, cities with a state.

Street addresses come in many shapes ("12 Main St", "Hammarvägen 15", "Rue de Piétrain 371",
"Apt. 864", "PSC 7951, Box 9972"). The patterns anchor on a house number next to a street
word (a suffix such as Street/Ave or a compound ending such as -vägen/-straße), so a number
in prose ("15 minutes") is not an address.
"""

from __future__ import annotations

import re

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.findings import Finding
from phigate.phi_scanner.recognizers.clinical_terms import NOT_NAME_ABBREVIATIONS

STREET_TYPES = (
    "street|st|avenue|ave|road|rd|lane|ln|boulevard|blvd|drive|dr|court|ct|way|place|pl|"
    "square|sq|terrace|ter|parkway|pkwy|highway|hwy|circle|cir|trail|trl|alley|plaza|"
    "crescent|close|gardens|grove|hill|hills|mews|row|walk|park|pike|point|ridge|run|"
    "turnpike|crossing|expressway|freeway|loop|path|view|vista|forges?|squares?|mall|"
    "green|heights|manor|meadows?|villas?|estates?|junction|landing|oval|pass|port|"
    "springs?|station|summit|track|wells?|ville")
# Street words of other languages that stand before the name ("Rue de ...", "Via ...").
STREET_PREFIXES = (
    r"Rue|Avenue|Av\.|Via|Viale|Piazza|Calle|Avenida|Rua|Travessa|Praça|Plaza|Paseo|"
    r"Camino|ul\.|Ulica|al\.|Aleja|Str\.|Chemin|Route|Place|Boulevard|Bd|Corso|Largo|"
    r"Carrer|Passeig|Rambla|Strada|Stradă")
# Compound street names ("Hammarvägen", "Koskikatu", "Brixtonlaan", "Hauptstraße").
STREET_ENDINGS = (
    r"(?:vägen|gatan|gata|vej|vegen|veien|veen|gade|stræde|straße|strasse|str\.|weg|"
    r"laan|straat|plein|gracht|dijk|kade|katu|kuja|tie|polku|väylä|rinne|gasse|platz|allee|"
    r"ring|damm|ufer|steig|stien|bakken|tanya|utca|ulica|vei|vägen|torget|torg|leden|"
    r"stigen|backe|sgatan|kaari|ranta|mäki|raitti|kaistale|tori|aukio)")

WORD = r"[A-ZÀ-ÖØ-Þ][\wÀ-ÿ'.-]*"
HOUSE = r"\d{1,6}[A-Za-z]?(?:-\d{1,4})?"
# A building or lot number before the house number ("3536 1659 Hoog St").
BUILDING = r"(?:\d{1,6}[ \t]+)?"
# Street words written as a separate word after the name ("Erzsébet tér 19.", "Kálmán Imre
# u. 12.", "Luite tee 87", "Trenerys gate 232").
SEPARATE_STREET_TYPES = (
    r"utca|u\.|út|útja|tér|tere|körút|krt\.|köz|sor|sétány|rakpart|rkp\.|fasor|tee|gate|"
    r"vei|veien|vej|gatan|gränd|vägen|tie|katu|ulica|str\.|strasse|straße|weg|laan|straat|"
    r"allé|allee|gasse|platz|ring|plads|torv|stræde")
PARTICLE = r"(?:de|del|dei|della|di|da|do|dos|des|du|la|le|les|los|las|van|von|der|den|e)"
UNIT = r"(?:,?\s*(?:apt\.?|apartment|suite|ste\.?|unit|#|fl\.?|floor|room|rm\.?)\s*#?\s*\w{1,6})"

# Street-name words must be capitalised (case-sensitive) so "at 3 with Dr. Lee" or "via
# email 2 times" are not addresses; the street types and unit words are case-insensitive.
STREET_FIRST = re.compile(
    rf"\b{BUILDING}{HOUSE}\s+(?:{WORD}\s+){{1,4}}(?i:{STREET_TYPES})\b\.?(?i:{UNIT})?")
NAME_THEN_NUMBER = re.compile(
    rf"\b{BUILDING}(?:{HOUSE}\s+)?(?:{WORD}\s+){{0,3}}[A-ZÀ-Þ][\wÀ-ÿ-]*(?i:{STREET_ENDINGS})\s+{HOUSE}\b(?i:{UNIT})?")
PREFIX_STREET = re.compile(
    rf"\b{BUILDING}(?:{HOUSE}\s+)?(?i:{STREET_PREFIXES})\s+(?:(?:de|del|della|di|da|do|dos|des|du|la|le|les|los|las|"
    rf"{WORD})\s+){{0,4}}{HOUSE}\b(?i:{UNIT})?")
# A house number, then the street word, then the name ("29 Rue de Tanger", "56 rue La Boétie").
NUMBER_THEN_PREFIX = re.compile(
    rf"\b{BUILDING}{HOUSE}[ \t]+(?i:{STREET_PREFIXES})(?:[ \t]+[\wÀ-ÿ'-]+){{1,5}}")
TYPE_THEN_NUMBER = re.compile(
    rf"\b{BUILDING}(?:{HOUSE}\s+)?{WORD}(?:\s+(?:{WORD}|[a-zà-ÿ]{{3,}})){{0,3}}\s+"
    rf"(?i:{SEPARATE_STREET_TYPES})\s+{HOUSE}\b\.?(?i:{UNIT})?")
# The street type after the number ("Dalmatinova 68 St.", "Via dei Fiorentini 17 street").
NUMBER_THEN_TYPE = re.compile(
    rf"\b{BUILDING}(?:{WORD}|{PARTICLE})(?:\s+(?:{WORD}|{PARTICLE})){{0,4}}\s+{HOUSE}\s+"
    rf"(?i:street|st|avenue|ave|road|rd)\b\.?")
UNIT_ONLY = re.compile(r"\b(?:apt\.?|apartment|suite|ste\.?|unit)\s*#?\s*\d{1,5}[A-Za-z]?\b",
                       re.IGNORECASE)
PO_BOX = re.compile(
    r"\b(?:P\.?\s?O\.?\s*Box|Post Office Box|PSC|CMR|Unit)\s+\d{1,6}"
    r"(?:,?\s*Box\s+\d{1,6})?(?:\s*\n?\s*(?:APO|FPO|DPO)\s+(?:AA|AE|AP)\s+\d{5})?",
    re.IGNORECASE)
MILITARY = re.compile(r"\b(?:APO|FPO|DPO)\s+(?:AA|AE|AP)\s+\d{5}\b")

# An address line: a house number, one to four words, a number ("20789 Allika 46").
NUMBERED_LINE = re.compile(
    rf"(?m)^[^\w\n]{{0,5}}({BUILDING}{HOUSE}[ \t]+(?:[A-ZÀ-ÖØ-Þ\u0370-\u03ff][\wÀ-ÿ'.-]*[ \t]+)"
    rf"{{1,4}}\d{{1,5}}\.?(?i:{UNIT})?)[ \t]*$")
# Two numbers around capitalised words after a place cue ("at 87818 Dalmatinova 68").
CUED_NUMBERED = re.compile(
    rf"(?i:\b(?:at|on|to|address:?|address is|lives at))[ \t]+({HOUSE}[ \t]+"
    rf"(?:[A-ZÀ-ÖØ-Þ][\wÀ-ÿ'-]*[ \t]+){{1,3}}\d{{1,5}}\b\.?)"
    r"(?![ \t]*(?i:mg|mcg|ml|units?|tablets?|pills?|times|%))")
# After a cue that announces an address: "lives at ...", "my address is ...".
CUED_ADDRESS = re.compile(
    r"(?i)\b(?:lives at|living at|live at|address is|address:|located at|moved to|"
    r"deliver(?:ed)? to|send it to)[ \t]+(\d[^,.;?!\n]{3,60}?\d+\.?)(?=[,.;?!\n]|$)")
CORNER = re.compile(r"(?i)\bthe corner of ([^.,?!\n]{3,60}? and [^.,?!\n]{3,60})")

US_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|"
    "NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR")
STATE_NAMES = (
    "Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|"
    "Georgia|Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|"
    "Massachusetts|Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|"
    "New Hampshire|New Jersey|New Mexico|New York|North Carolina|North Dakota|Ohio|Oklahoma|"
    "Oregon|Pennsylvania|Rhode Island|South Carolina|South Dakota|Tennessee|Texas|Utah|"
    "Vermont|Virginia|Washington|West Virginia|Wisconsin|Wyoming")
CITY_STATE = re.compile(
    rf"\b((?:[A-Z][a-z]+\.?[ \t]){{0,2}}[A-Z][a-z]+),[ \t]*(?:{US_STATES}|{STATE_NAMES})\b")

_NOT_A_STREET_START = re.compile(r"^\d+\s+(?:minutes?|hours?|days?|weeks?|years?|mg|ml)\b",
                                 re.IGNORECASE)
# "During 1971": a word that ends like a compound street name ("-ring") before a year.
_WORD_AND_YEAR = re.compile(r"^[^\W\d_]+[ \t]+(?:19|20)\d\d$")


# Clinical notes write "VIA FOLEY 50", "HR 116 ST", "4L TOL WELL": a candidate address with a
# clinical word in it is not one.
_CLINICAL_WORDS = frozenset(
    "foley line art aline ogt ngt td fm nc mask tol run beat tolerated gtt drip tlc".split())


def _clinical(value: str) -> bool:
    """An abbreviation in capitals ("HR", "TEE"; "Luite tee" is a street) or a bedside word."""
    return any((token.isupper() and token in NOT_NAME_ABBREVIATIONS)
               or token.lower() in _CLINICAL_WORDS
               for token in re.findall(r"[^\W\d_]{2,}", value))


def _touches_slash(text: str, start: int, end: int) -> bool:
    """"10/1 via right IJ", "place 4/16": a number that is part of a date or a fraction."""
    return text[max(0, start - 1):start] == "/" or text[end:end + 1] == "/"


def find_addresses(text: str, part: str) -> list[Finding]:
    results = [f for f in _find_address_candidates(text, part)
               if not _clinical(f.text) and not _touches_slash(text, f.start, f.end)]
    for m in CITY_STATE.finditer(text):
        results.append(Finding(cat.LOCATION, m.group(), m.start(), m.end(), part, 0.8,
                               "city with a state"))
    return results


def _find_address_candidates(text: str, part: str) -> list[Finding]:
    results: list[Finding] = []
    for pattern, confidence, reason in (
        (STREET_FIRST, 0.85, "house number and street"),
        (NAME_THEN_NUMBER, 0.8, "street name and house number"),
        (PREFIX_STREET, 0.75, "street name and house number"),
        (NUMBER_THEN_PREFIX, 0.75, "house number and street name"),
        (TYPE_THEN_NUMBER, 0.75, "street name and house number"),
        (NUMBER_THEN_TYPE, 0.75, "street name, house number and street type"),
        (PO_BOX, 0.85, "post office or military box"),
        (MILITARY, 0.85, "military post office"),
        (UNIT_ONLY, 0.6, "apartment or suite number"),
    ):
        for m in pattern.finditer(text):
            value = m.group().strip()
            if (_NOT_A_STREET_START.match(value) or "\n\n" in value
                    or _WORD_AND_YEAR.match(value)):
                continue
            start = m.start() + m.group().index(value)
            results.append(Finding(cat.STREET_ADDRESS, value, start, start + len(value), part,
                                   confidence, reason))
    for pattern, confidence, reason in (
        (NUMBERED_LINE, 0.6, "address line"),
        (CUED_NUMBERED, 0.65, "numbered street after a cue"),
        (CUED_ADDRESS, 0.75, "address after a cue"),
        (CORNER, 0.7, "street corner"),
    ):
        for m in pattern.finditer(text):
            results.append(Finding(cat.STREET_ADDRESS, m.group(1), m.start(1), m.end(1), part,
                                   confidence, reason))
    return results
