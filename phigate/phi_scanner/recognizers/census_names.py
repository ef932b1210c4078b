"""Names of people found with the census name lexicon, capitalisation and context.

The small spaCy model misses many names that carry no cue: in lists ("Kónya, Becker and
Vasquez"), in signature and address blocks, with a middle initial ("Ravil G Yefimov"), as
the speaker of a line ("Nicole: ..."). This pass finds them without the model:

- a run of two to four capitalised words (particles such as "van" or "ten" and middle
  initials allowed) that starts with a known first name or ends with a known surname;
- a single known first name, or a known surname, that does not start a sentence;
- a coordinated list of capitalised words ("A, B and C") most of whose members are names;
- names after a strong cue, in any case ("my name is ...", "follow up with ...", "Ms. ...");
- speakers of dialogue lines ("Nicole: ..."), a word before a person verb ("Trivo lives");
- two capitalised words that are neither dictionary words nor known names ("Miklós Hajdu");
- in lines written all in lower case, a known first name followed by a known surname.

Common English words, countries and nationalities that are also census names never count alone
(see :mod:`phigate.phi_scanner.census_lexicon`); a run containing a word that names an
organisation or a street ("Clinic", "Streets", "Inc") is not a person. Findings carry a lower
confidence than a cue name, so a health term of the same spelling wins an overlap. (The small
model's ORG/GPE labels were tried as a veto and rejected: it calls more real names
organisations than it catches firms.)"""

from __future__ import annotations

import re
from dataclasses import dataclass

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.census_lexicon import (
    COMMON_CAPITALISED,
    NAME_PARTICLES,
    NameLexicon,
    fold,
    is_ordinary,
)
from phigate.phi_scanner.findings import Finding
from phigate.phi_scanner.recognizers.addresses import STREET_TYPES
from phigate.phi_scanner.recognizers.clinical_terms import NOT_NAME_ABBREVIATIONS
from phigate.phi_scanner.recognizers.dates import Spans

REASON_RUN = "name from lexicon"
REASON_SINGLE = "single name from lexicon"
REASON_CUED = "name after a cue"
REASON_SHAPE = "name-shaped words"
LEXICON_REASONS = frozenset({REASON_RUN, REASON_SINGLE, REASON_CUED, REASON_SHAPE})

# A word; a possessive "'s" is not part of it ("Wisława Szczepańska's killers").
WORD = re.compile(r"[^\W\d_]+(?:['’-](?![sS]\b)[^\W\d_]+)*")
# What may stand between two words of one name: a space or tab, or ". " after an initial.
JOINER = re.compile(r"[ \t]{1,2}")
INITIAL_JOINER = re.compile(r"\.?[ \t]{1,2}")

# Words that make a capitalised run an organisation, a place or a heading, not a person.
NON_PERSON_WORDS = frozenset("""
inc llc ltd plc gmbh corp corporation company co group holdings hospital hospitals clinic
clinics medical medicine health healthcare center centre centers university college school
academy bank insurance orchestra band foundation institute associates partners partnership
pharmacy labs laboratory laboratories church services service solutions technologies
technology systems society club press news magazine weekly records studio studios hotel
restaurant cafe airport station county city state states department office offices agency
family practice pediatrics cardiology dermatology oncology orthopedics radiology urology
neurology surgery dental dentistry vision eye care wellness therapy rehab rehabilitation
street st avenue ave road rd lane ln boulevard blvd drive dr court ct way place pl square
terrace parkway highway circle trail plaza park bridge river lake mount mountain island
north south east west northern southern eastern western new saint san santa fort port
united kingdom republic america american europe european international national global
mr mrs ms miss mx dr prof sir madam lord lady king queen prince princess president senator
governor mayor judge captain general officer sergeant rev reverend father sister brother
nurse doctor patient patients member members customer team staff
""".split()) | {t for t in STREET_TYPES.split("|")} | {f"{t}s" for t in STREET_TYPES.split("|")}
PRONOUNS = frozenset("i me you he him she her it we us they them who god".split())
STOP_WORDS = NON_PERSON_WORDS | PRONOUNS | {w.lower() for w in COMMON_CAPITALISED}
# In a list of names a surname may look like a street word ("Park and Mann"); firms' words
# and sentence words still end it.
LIST_STOP_WORDS = STOP_WORDS - {t for t in STREET_TYPES.split("|")}

# Sentence openers before a word: it may be capitalised only because it starts a sentence.
SENTENCE_START = re.compile(r"(?:^|[.!?:;\"“”(\[]|\n)[\s>*\-•\"“]*$")
# What follows a lone first name at the start of a sentence when it names a person.
PERSON_CONTINUATION = re.compile(
    r"(?:['’]s\b|[ \t]*[:,]|[ \t]+(?:is|was|has|had|and|said|says|shouted|lives|lived|spent|"
    r"will|would|can|could|called|told|asked|wants|wanted|went|needs|works|worked)\b)")
# "A, B and C", "A and B": capitalised single words in a coordination (bounded, so a long
# comma-separated list without "and" costs linear time, not quadratic).
COORDINATION = re.compile(
    r"(?<![\w'’-])([^\W\d_]{2,}(?:[ \t]*,[ \t]*[^\W\d_]{2,}){0,12},?[ \t]+(?:and|&)[ \t]+"
    r"[^\W\d_]{2,})(?![\w'’-])")
ORGANISATION_BEFORE = re.compile(r"(?i)\b(?:at|from|of|the|for|by)[ \t]+$")
ORGANISATION_AFTER = re.compile(
    r"(?i)^[ \t,]*(?:inc|llc|ltd|plc|corp|co|group|orchestra|band|associates|partners|law|"
    r"and sons|& sons)\b")
# A word (any case) right after a cue that announces a name, or after a title.
CUED_NAME = re.compile(
    r"(?i:\b(?:my name is|name is|name's|call me|calls me|called|named|maiden name is|"
    r"last name(?: is)?\??|first name(?: is)?|my (?:kid|son|daughter|child|wife|husband|"
    r"partner|mom|mother|dad|father)|mr\.?|mrs\.?|ms\.?|miss|follow up with|speak (?:to|with)|"
    r"talk to)[ \t]+)"
    r"([^\W\d_]{2,}(?:['’-][^\W\d_]+)*(?:[ \t]+[^\W\d_](?:\.|(?![\w'’-])))?(?:[ \t]+[^\W\d_]{2,}"
    r"(?:['’-][^\W\d_]+)*)?)")
NAMING_CUE = re.compile(r"(?i)\b(?:name|call|calls|called|named)\b")
# A speaker's name opening a line of dialogue ("Nicole: Remember me?").
SPEAKER = re.compile(r"(?m)^[ \t>]*([A-ZÀ-ÖØ-Þ][^\W\d_]+)[ \t]*:[ \t]*[\"“]?[A-Za-z]")
LABEL_WORDS = frozenset("""
name phone email e-mail mail website web address date time subject re to from cc bcc bot
user note fax mobile desk office tel cell home work question answer q a customer agent
support system error warning info summary total status result results
""".split())
# Verbs that take a person as subject: a capitalised word before one is a name even at the
# start of a sentence ("Sofie lives on ...", "Magnus spent a year ...").
HUMAN_VERB = re.compile(
    r"[ \t]+(?:lives|lived|spent|began|shouted|said|says|told|asked|replied|wrote|wants|"
    r"wanted|went|works|worked|flew|moved|gave|had given|was born|is married)\b")
LOWER_INITIAL_NAME = re.compile(r"[ \t]+[a-z]\.?[ \t]+[a-zà-öø-ÿ]{2,}\b")
LOWER_WORD = re.compile(r"[a-zà-öø-ÿ]+(?:['’-](?!s\b)[a-zà-öø-ÿ]+)*")


@dataclass(frozen=True)
class _Token:
    text: str
    start: int
    end: int

    @property
    def key(self) -> str:
        return fold(self.text)

    @property
    def capitalised(self) -> bool:
        # "TRONDHEIM" or "USNS" in capitals are places and codes more often than names.
        return self.text[0].isupper() and (len(self.text) == 1 or not self.text.isupper())

    @property
    def initial(self) -> bool:
        return len(self.text) == 1 and self.text.isupper()


def find_lexicon_names(text: str, part: str, lexicon: NameLexicon) -> list[Finding]:
    finder = _Finder(text, part, lexicon)
    finder.cued_names()
    finder.speakers()
    finder.coordinations()
    finder.capitalised_runs()
    finder.lower_case_names()
    return finder.results


NOT_SPEAKERS = STOP_WORDS | LABEL_WORDS


def speaker_lines(text: str) -> list[re.Match[str]]:
    """Lines opening with "Name:"; two or more make dialogue, wherever they stand."""
    return [m for m in SPEAKER.finditer(text) if fold(m.group(1)) not in NOT_SPEAKERS
            and not m.group(1).isupper() and m.group(1).upper() not in NOT_NAME_ABBREVIATIONS]


class _Finder:
    def __init__(self, text: str, part: str, lexicon: NameLexicon) -> None:
        self.text = text
        self.part = part
        self.lexicon = lexicon
        self.results: list[Finding] = []
        self._taken: set[int] = set()  # start offsets already reported
        # Lists that read as a firm's name ("at Jones, Mitchell and Williams"): their words
        # are not taken one by one either.
        self._organisations = Spans()
        self._title_case: dict[tuple[int, int], bool] = {}
        self._lower_case: dict[tuple[int, int], bool] = {}

    def add(self, start: int, end: int, confidence: float, reason: str) -> None:
        if start in self._taken:
            return
        self._taken.add(start)
        self.results.append(Finding(cat.PERSON, self.text[start:end], start, end, self.part,
                                    confidence, reason))

    # -- word classes --------------------------------------------------------------------

    def first_name(self, token: _Token) -> bool:
        return token.key in self.lexicon.first_names

    def surname(self, token: _Token) -> bool:
        return token.key in self.lexicon.surnames

    def clear_name(self, token: _Token) -> bool:
        """In the lexicon and not also a common English word."""
        return (len(token.text) > 2 and not self.common_word(token)
                and (self.first_name(token) or self.surname(token)))

    def name_shaped(self, token: _Token) -> bool:
        return (len(token.text) > 2 and token.text[1:].islower() and token.key not in STOP_WORDS
                and not self.common_word(token)
                and not is_ordinary(token.key, self.lexicon.ordinary_words))

    def common_word(self, token: _Token) -> bool:
        return token.key in self.lexicon.not_alone

    def starts_sentence(self, start: int) -> bool:
        return bool(SENTENCE_START.search(self.text[max(0, start - 6):start]))

    def _line(self, position: int) -> tuple[int, int]:
        line_start = self.text.rfind("\n", 0, position) + 1
        line_end = self.text.find("\n", position)
        return line_start, line_end if line_end >= 0 else len(self.text)

    def title_case_line(self, start: int) -> bool:
        """Headings capitalise every word: single words there say nothing."""
        line = self._line(start)
        if line not in self._title_case:  # once per line: a long line is read once
            words = WORD.findall(self.text, *line)
            self._title_case[line] = len(words) >= 4 and (
                sum(word[0].isupper() for word in words) >= 0.75 * len(words))
        return self._title_case[line]

    # -- cues -----------------------------------------------------------------------------

    def cued_names(self) -> None:
        for match in CUED_NAME.finditer(self.text):
            words = match.group(1).split()
            first = _Token(words[0], match.start(1), match.start(1) + len(words[0]))
            if first.key in STOP_WORDS or first.key in LABEL_WORDS or (
                    first.key in self.lexicon.not_alone and not self.lexicon.is_name(first.text)):
                continue
            naming = NAMING_CUE.search(match.group())
            if words[0].islower() and not self.lexicon.is_name(first.text) and not (
                    naming and self._lower_case_line(first.start)):
                continue  # "my father retired": a lower-case word needs more than a cue
            end = match.end(1)
            if len(words) > 1 and (fold(words[-1]) in STOP_WORDS
                                   or fold(words[-1]) in self.lexicon.not_alone):
                end = first.end  # "my name is vitoria but": the name is one word
            self.add(match.start(1), end, 0.7, REASON_CUED)

    def speakers(self) -> None:
        """Lines of dialogue: two or more lines opening with "Name:" and speech."""
        # A known name, not a heading word: notes open lines with "Neuro:", "Resp:", "Skin:".
        if len(matches := speaker_lines(self.text)) < 2:
            return
        for match in matches:
            self.add(match.start(1), match.end(1), 0.6, REASON_SINGLE)

    # -- capitalised runs ----------------------------------------------------------------

    def capitalised_runs(self) -> None:
        run: list[_Token] = []
        previous: _Token | None = None
        for match in WORD.finditer(self.text):
            word = match.group()
            if not word[0].isupper() and word not in NAME_PARTICLES:
                self._judge_run(run)  # the common case, kept cheap: an ordinary word
                run, previous = [], None
                continue
            token = _Token(word, match.start(), match.end())
            joined = previous is not None and self._joins(previous, token)
            if not (joined and run):
                self._judge_run(run)
                run = []
            if token.capitalised and token.key not in STOP_WORDS:
                run.append(token)
            elif run and token.key in NAME_PARTICLES and token.text.islower():
                run.append(token)  # kept only if a capitalised word follows
            else:
                self._judge_run(run)
                run = []
            previous = token
        self._judge_run(run)

    def _joins(self, previous: _Token, token: _Token) -> bool:
        gap = self.text[previous.end:token.start]
        joiner = INITIAL_JOINER if previous.initial else JOINER
        return bool(joiner.fullmatch(gap))

    def _judge_run(self, run: list[_Token]) -> None:
        while run and not run[-1].capitalised:
            run = run[:-1]  # a trailing particle is an ordinary word
        if (len(run) > 1 and not self.lexicon.is_name(run[0].text) and not run[0].initial
                and self.first_name(run[1]) and self.starts_sentence(run[0].start)):
            run = run[1:]  # "Yesterday Sarah Whitfield": capitalised for starting the sentence
        if not run or len(run) > 4:
            return  # more than four capitalised words: a title or a heading
        after = self.text[run[-1].end:run[-1].end + 20]
        if ORGANISATION_AFTER.match(after):
            return
        if len(run) == 1:
            self._judge_single(run[0])
            return
        first, last = run[0], run[-1]
        if first.initial and len(run) == 2 and not self.clear_name(last):
            return
        if last.initial:
            return
        middle_initial = any(token.initial for token in run[1:-1])
        first_known = self.first_name(first)
        last_known = self.surname(last) or self.first_name(last)
        english = [self.common_word(token) for token in (first, last)]
        if first_known and last_known and not all(english):
            confidence = 0.75
        elif first_known and not english[1] and not first.initial:
            confidence = 0.65  # "Calquín"-style surnames the census lacks
        elif self.clear_name(last) and not english[0]:
            confidence = 0.65
        elif middle_initial and not any(english):
            confidence = 0.6
        elif len(run) == 2 and all(self.name_shaped(token) for token in run):
            # "Miklós Hajdu", "Edvard Petrussen": two capitalised words that are neither
            # dictionary words nor known names look like a name from abroad.
            self.add(first.start, last.end, 0.5, REASON_SHAPE)
            return
        else:
            return
        self.add(first.start, last.end, confidence, REASON_RUN)

    def _judge_single(self, token: _Token) -> None:
        if (len(token.text) > 2 and HUMAN_VERB.match(self.text, token.end)
                and token.key not in STOP_WORDS and token.key not in self.lexicon.common_words):
            self.add(token.start, token.end, 0.6, REASON_SINGLE)  # "Trivo lives on ..."
            return
        if not self.clear_name(token) or self.title_case_line(token.start):
            return
        if self._organisations.overlaps(token.start, token.end):
            return
        at_start = self.starts_sentence(token.start)
        follows = PERSON_CONTINUATION.match(self.text, token.end)
        if self.first_name(token):
            if not at_start or follows:
                self.add(token.start, token.end, 0.6, REASON_SINGLE)
        elif not at_start and not ORGANISATION_BEFORE.search(
                self.text[max(0, token.start - 6):token.start]):
            self.add(token.start, token.end, 0.5, REASON_SINGLE)

    # -- lists ---------------------------------------------------------------------------

    def coordinations(self) -> None:
        for match in COORDINATION.finditer(self.text):
            words = [_Token(m.group(), match.start(1) + m.start(), match.start(1) + m.end())
                     for m in WORD.finditer(match.group(1))]
            members = [w for w in words if w.text not in ("and",)]
            if len(members) < 2:
                continue
            if not all(w.capitalised for w in members) and not self._lower_case_line(
                    match.start()):
                continue  # in lower-case text, capitals say nothing either way
            if any(w.key in LIST_STOP_WORDS for w in members):
                continue
            before = self.text[max(0, match.start() - 6):match.start()]
            after = self.text[match.end():match.end() + 20]
            if (ORGANISATION_BEFORE.search(before) or ORGANISATION_AFTER.match(after)
                    or self._whole_line(match.start(), match.end())):
                self._organisations.add(match.start(), match.end())
                continue
            clear = sum(self.clear_name(w) for w in members)
            # a surname that is also a word ("Reed", "Park") counts half in a list of names
            known = clear + 0.5 * sum(not self.clear_name(w) and self.lexicon.is_name(w.text)
                                      for w in members)
            if not clear or known * 2 < len(members):
                continue
            for word in members:
                self.add(word.start, word.end, 0.55, REASON_SINGLE)

    def _lower_case_line(self, position: int) -> bool:
        line = self._line(position)
        if line not in self._lower_case:
            self._lower_case[line] = not any(ch.isupper() for ch in self.text[slice(*line)])
        return self._lower_case[line]

    def _whole_line(self, start: int, end: int) -> bool:
        """A list alone on its line is a letterhead's firm name ("Owens, Duran and Oneal")."""
        before = self.text[self.text.rfind("\n", 0, start) + 1:start]
        line_end = self.text.find("\n", end)
        after = self.text[end:line_end if line_end >= 0 else len(self.text)]
        return not before.strip(" \t>*-") and not after.strip(" \t.,")

    # -- lower case ----------------------------------------------------------------------

    def lower_case_names(self) -> None:
        """Lines written all in lower case, where capitals say nothing: a known first name
        and surname, or a known name with an initial ("emidio p lombardo")."""
        position = 0
        while position < len(self.text):
            line_end = self.text.find("\n", position)
            line_end = len(self.text) if line_end < 0 else line_end
            if not any(ch.isupper() for ch in self.text[position:line_end]):
                self._lower_case_line_names(position, line_end)
            position = line_end + 1

    def _lower_case_line_names(self, start: int, end: int) -> None:
        words = [_Token(m.group(), m.start(), m.end())
                 for m in LOWER_WORD.finditer(self.text, start, end)]
        for index, word in enumerate(words):
            initial = LOWER_INITIAL_NAME.match(self.text, word.end)
            if initial and word.key not in STOP_WORDS and (
                    self.clear_name(word) or self.lexicon.is_surname(initial.group().split()[-1])):
                self.add(word.start, initial.end(), 0.6, REASON_RUN)
                continue
            if not self.clear_name(word):
                continue
            following = words[index + 1] if index + 1 < len(words) else None
            if (following is not None and self._joins(word, following)
                  and self.first_name(word) and self.clear_name(following)
                  and self.surname(following)):
                self.add(word.start, following.end, 0.5, REASON_RUN)
