"""People in clinical text, found from cue words that work in any case.

Nursing notes are written in Title Case, ALL CAPS or all lower case, and the small spaCy model
is blind in the last two. The cues are what a note says around a person:

- titles: ``Dr``/``DR``/``dr.``, ``Mr``/``MRS``/``ms.`` (a patient);
- roles and credentials: ``NP CAROL``, ``Emily Parker, RN``, ``q. lander rrt``,
  ``J. HALLORAN-PT``, ``house staff mary souza``;
- care verbs: ``spoke with``, ``discussed with``, ``paged``, ``notified``, ``per``, ``seen by``
  before a name, ``aware``, ``notified``, ``called`` after one;
- relatives: ``daughter ellen``, ``dtr ellen``, ``SONS SMOKEY, MORRIS AND ROGER``,
  ``Hank Przybylo (son)``.

After a title any word that is not a function word is taken (``DR KING``). After the weaker
cues the word must be a census name that is not an ordinary English word, or a word no
dictionary knows (``husband milovan``): ``son called``, ``per protocol``, ``spoke with
team`` are not names. Clinical abbreviations (``ICU``, ``PCP``, ``CXR``) never are.
"""

from __future__ import annotations

import re

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.census_lexicon import NameLexicon, is_ordinary
from phigate.phi_scanner.findings import Finding
from phigate.phi_scanner.recognizers.clinical_terms import NOT_NAME_ABBREVIATIONS

REASON_CLINICIAN = "clinician name"
REASON_CARE_CUE = "name after a care cue"
REASON_RELATIVE = "relative's name"
REASON_TITLED = "name with title"

WORD = re.compile(r"[A-Za-z](?:[A-Za-z'’]*[A-Za-z])?(?:-[A-Za-z]+)?")
INITIAL = re.compile(r"[A-Za-z]\.?(?=[ \t])")
# Words that follow a cue but never name anyone (in any case).
FUNCTION_WORDS = frozenset("""
a an the and or but to at in on of for from by with w as is was are were be been will would
may might can could shall should must has have had do did does not no yes he she him her his
hers they them their we us our you your it its this that these those who whom which what
aware notified called paged updated informed made here there present bedside team service
staff today tonight tomorrow yesterday now then also re regarding about again ok okay x pt
pts patient patients family md mds rn rns np nps attending resident intern fellow nurse
nursing doctor doctors dr drs house office said says told asked came come went in-law law
visit visited visiting phone phoned spoke talked discussed plan plans will wants wanted
all both each other others same several many few some any call calls per via pm am
trying stating states obtained hospitalist hospitalists intensivist surgeon surgeons
cardiologist pharmacist dietitian nutritionist chaplain
""".split())
TITLE_CLINICIAN = re.compile(r"(?i)\b(?:dr|drs|dr's|doctors?)\b\.?[ \t]*")
TITLE_PATIENT = re.compile(r"(?i)\b(?:mr|mrs|ms|miss)\b\.?[ \t]+")
ROLE_BEFORE = re.compile(
    r"(?i)\b(?:np|rn|resident|intern|attending|fellow|nurse|rrt|sw|social worker|"
    r"case manager|case management contacts|case ?worker|house ?staff|chaplain|surgeon|"
    r"cardiologist|intensivist|hospitalist|pharmacist|dietitian|nutritionist|pcp|cns|nsg)"
    r"\b[ \t:(]+")
CARE_CUE_BEFORE = re.compile(
    r"(?i)\b(?:spoke (?:with|to)|discussed with|talked (?:with|to)|d/w|paged|notified|"
    r"called|informed|seen by|evaluated by|examined by|reported to|consulted|"
    r"ask(?:ed)? (?:to page|for)|page|name is|(?P<weak>per|by|w/|with|contact))[ \t:]+")
NAME_TOKEN = re.compile(r"[A-Za-z](?:[A-Za-z'’-]*[A-Za-z])?\.?")
RELATIONS = (
    r"sons?|daughters?|dtrs?|dau|wife|husband|hus|spouse|sisters?|brothers?|mother|mom|"
    r"father|dad|nieces?|nephews?|grandsons?|grand ?daughters?|grandaughters?|aunt|uncle|"
    r"cousin|friend|neighbou?r|proxy|hcp|fianc[ée]e?|partner|companion|boyfriend|"
    r"girlfriend|(?:son|daughter|dtr)[- ]in[- ]law|step(?:son|daughter)|grandchild")
RELATIVE_BEFORE = re.compile(
    rf"(?i)\b(?:{RELATIONS})\b(?:['’]s)?[ \t]*(?:\([^)\n]{{0,12}}\))?[ \t]*[,:-]*[ \t]*")
# What follows a name: a care verb, a credential or a relation in brackets.
AFTER_CUE = re.compile(
    r"(?i)(?<=[A-Za-z.])(?:[ \t]*,[ \t]*|[ \t]+|-)(?:(?P<credential>md|m\.d\.|rn|r\.n\.|rrt|"
    r"np|crnp|pa-c|lpn|cnm|msw|lcsw|licsw|licws|pharmd|slp|(?P<weak>pt|ot|do|pa|ms))|(?P<verb>aware|"
    r"notified|made aware|paged|called|in to see|at bedside|updated|informed|consulted|"
    rf"ordered|recommended|examined|in to visit|visited)|\((?P<relation>{RELATIONS})\))\b")
# "KEEP ROMERO FAMILY AWARE", "the smith family": a surname before "family".
FAMILY_AFTER = re.compile(r"(?i)(?<=[A-Za-z])[ \t]+family\b")
LIST_JOINER = re.compile(r"(?i)[ \t]*(?:,|and|&)[ \t]*(?:and[ \t]+)?")


INFLECTIONS = (("ing", ("", "e")), ("ed", ("", "e")), ("es", ("", "e")), ("ly", ("",)),
               ("ment", ("",)), ("s", ("",)))


class _People:
    def __init__(self, text: str, part: str, lexicon: NameLexicon) -> None:
        self.text, self.part, self.lexicon = text, part, lexicon
        self.results: list[Finding] = []

    # -- word tests ------------------------------------------------------------------------

    def blocked(self, word: str) -> bool:
        lowered = word.lower()
        return (lowered in FUNCTION_WORDS or word.upper() in NOT_NAME_ABBREVIATIONS
                or len(word) < 2)

    def known_name(self, word: str, census_only: bool = False) -> bool:
        """A census name that is not an ordinary word, or a word no dictionary knows."""
        if self.blocked(word):
            return False
        lowered = word.lower().replace("’", "'")
        if lowered in self.lexicon.not_alone or self.inflected_word(lowered):
            return False
        if self.lexicon.is_name(lowered):
            return True
        return not census_only and not is_ordinary(
            lowered.split("-")[0], self.lexicon.ordinary_words) and (
            re.sub(r"['-]", "", lowered).isalpha() and len(lowered) > 2)

    def cued_name(self, word: str) -> bool:
        """After a strong cue (a relation, a credential) a census name counts even when it is
        also a word ("son bill", "Painter MD"); function words and abbreviations never do."""
        if self.blocked(word) and not (len(word) == 2 and self.lexicon.is_first_name(word)):
            return False
        return self.lexicon.is_name(word.lower()) or self.known_name(word)

    def inflected_word(self, lowered: str) -> bool:
        """"trying", "stated", "changes": Webster's lists the stem, not the inflection."""
        ordinary = self.lexicon.ordinary_words
        for suffix, replacements in INFLECTIONS:
            if lowered.endswith(suffix) and len(lowered) > len(suffix) + 2:
                stem = lowered[:-len(suffix)]
                if any(is_ordinary(stem + r, ordinary) for r in replacements):
                    return True
        return False

    # -- name runs after a cue -------------------------------------------------------------

    def names_at(self, position: int, strict: bool, max_words: int = 3,
                 census_only: bool = False, relaxed: bool = False) -> tuple[int, int]:
        """The span of a name starting at ``position`` (an initial allowed), or (p, p)."""
        end = position
        words = 0
        cursor = position
        while words < max_words:
            initial = INITIAL.match(self.text, cursor)
            if initial and words < max_words - 1 and not self.blocked(initial.group()[0] * 2):
                following = WORD.match(self.text, self.text_skip(initial.end()))
                if following and self.known_name(following.group()):
                    cursor = self.text_skip(initial.end())
                    continue
            word = WORD.match(self.text, cursor)
            if not word:
                break
            if relaxed:
                accept = self.cued_name(word.group())
            elif strict or words:
                accept = self.known_name(word.group(), census_only)
            else:
                accept = not self.blocked(word.group())
            if not accept:
                break
            end = word.end()
            words += 1
            cursor = self.text_skip(end)
            if cursor == end or self.text[end:cursor].count("\n"):
                break
        return (position, end) if end > position else (position, position)

    def text_skip(self, position: int) -> int:
        while position < len(self.text) and self.text[position] in " \t.":
            position += 1
        return position

    def add(self, start: int, end: int, confidence: float, reason: str) -> None:
        if end > start:
            self.results.append(Finding(cat.PERSON, self.text[start:end], start, end,
                                        self.part, confidence, reason))

    # -- the cues ----------------------------------------------------------------------------

    def titles(self) -> None:
        for pattern, reason in ((TITLE_CLINICIAN, REASON_CLINICIAN),
                                (TITLE_PATIENT, REASON_TITLED)):
            for m in pattern.finditer(self.text):
                # "MS changes" is mental status; "Ms. Clears" or "ms dobbs" is a patient
                strict = pattern is TITLE_PATIENT and not m.group().rstrip().endswith(".") \
                    and m.group()[:2].lower() == "ms"
                start, end = self.names_at(m.end(), strict=strict, max_words=2)
                self.add(start, end, 0.85, reason)
                joiner = LIST_JOINER.match(self.text, end) if end > start else None
                if joiner and pattern is TITLE_CLINICIAN:  # "DRS JOSEPH AND ROBBINSON"
                    start, end = self.names_at(joiner.end(), strict=True, max_words=2,
                                               relaxed=True)
                    self.add(start, end, 0.8, reason)

    def roles_and_cues(self) -> None:
        for pattern, reason in ((ROLE_BEFORE, REASON_CLINICIAN),
                                (CARE_CUE_BEFORE, REASON_CARE_CUE)):
            for m in pattern.finditer(self.text):
                if TITLE_CLINICIAN.match(self.text, m.end()):
                    continue  # "spoke with Dr X": the title's rule takes it
                # After "with", "per", "by" only a census name: "with tylenol", "per protocol"
                weak = bool(m.groupdict().get("weak"))
                # a role names up to three words ("CONTACTS KAREN ANN YANULIS")
                start, end = self.names_at(m.end(), strict=True, max_words=2 if weak else 3,
                                           census_only=weak)
                self.add(start, end, 0.75, reason)
                if pattern is ROLE_BEFORE:  # "nsg (d. renna and j. o'brien)"
                    self._list_after(end if end > start else -1, reason)

    def _list_after(self, end: int, reason: str) -> None:
        for _ in range(3):
            joiner = LIST_JOINER.match(self.text, end) if end >= 0 else None
            if not joiner or not re.search(r"(?i)and|&", joiner.group()):
                return
            start, end = self.names_at(joiner.end(), strict=True, max_words=2)
            if end == start:
                return
            self.add(start, end, 0.7, reason)

    def families(self) -> None:
        """``KEEP ROMERO FAMILY AWARE``: a census surname that is no ordinary word."""
        for m in FAMILY_AFTER.finditer(self.text):
            words = list(WORD.finditer(self.text, max(0, m.start() - 30), m.start()))
            if not words or words[-1].end() != m.start():
                continue
            last = words[-1]
            if self.lexicon.is_surname(last.group()) and self.known_name(last.group(), True):
                self.add(last.start(), last.end(), 0.7, REASON_RELATIVE)

    def before_a_cue(self) -> None:
        """``LINDSEY CARDARELLI CALLED``, ``Emily Parker,RN``: a name before a cue or credential."""
        for m in AFTER_CUE.finditer(self.text):
            start, end = self._names_before(m.start(), relaxed=bool(m.group("credential")))
            if end == start:
                continue
            if m.group("credential"):
                weak = m.group("weak")
                if weak and not re.match(r"[A-Za-z]\.", self.text[start:end]):
                    continue  # "PT", "DO", "MS" are words; only "J. HALLORAN-PT" counts
                self.add(start, end, 0.8, REASON_CLINICIAN)
            elif m.group("relation"):
                self.add(start, end, 0.75, REASON_RELATIVE)
            else:
                self.add(start, end, 0.7, REASON_CARE_CUE)

    def _names_before(self, position: int, relaxed: bool = False) -> tuple[int, int]:
        """Up to three name words (initials allowed) ending at ``position``."""
        window_start = max(0, position - 45)
        words = list(NAME_TOKEN.finditer(self.text, window_start, position))
        start = end = position
        taken = 0
        for word in reversed(words):
            gap = self.text[word.end():start]
            if gap.strip(" \t.") or "\n" in gap or taken == 3:
                break
            token = word.group()
            if len(token.rstrip(".")) == 1:
                if taken == 0:
                    break
            elif not (self.cued_name(token) if relaxed else self.known_name(token)):
                break
            if taken == 0:
                end = word.end()
            start = word.start()
            taken += 1
        return (start, end) if taken else (position, position)

    def signature(self) -> None:
        """The last line of a note, one or two census names alone: who wrote it ("SUSAN")."""
        m = SIGNATURE.search(self.text[-60:])
        if not m:
            return
        offset = max(0, len(self.text) - 60)
        words = [w for w in m.groups() if w]
        if all(self.lexicon.is_name(w.lower()) and self.known_name(w) for w in words):
            self.add(offset + m.start(1), offset + m.end(m.lastindex or 1), 0.7,
                     REASON_CLINICIAN)

    def relatives(self) -> None:
        for m in RELATIVE_BEFORE.finditer(self.text):
            position = m.end()
            for _ in range(5):  # "sons smokey, morris and roger"
                start, end = self.names_at(position, strict=True, max_words=2, relaxed=True)
                if end == start:
                    break
                self.add(start, end, 0.8, REASON_RELATIVE)
                joiner = LIST_JOINER.match(self.text, end)
                if not joiner:
                    break
                position = joiner.end()


SIGNATURE = re.compile(
    r"(?:\n|\.[ \t]+)[ \t]*([A-Za-z][a-z]+|[A-Z]+)(?:[ \t]+([A-Za-z][a-z]+|[A-Z]+))?[ \t,]*\s*$")


def find_clinical_people(text: str, part: str, lexicon: NameLexicon) -> list[Finding]:
    people = _People(text, part, lexicon)
    people.signature()
    people.titles()
    people.roles_and_cues()
    people.relatives()
    people.families()
    people.before_a_cue()
    return people.results
