"""Health vocabularies from real sources, matched with one Aho-Corasick automaton.

- Conditions: the ICD-10-CM tabular list shipped with ``simple-icd-10-cm`` (descriptions and
  inclusion terms of chapters A-U, cut into the short phrases people write: "type 2 diabetes
  mellitus", "hypertension", "asthma").
- Medications: the MedlinePlus-linked drug names and brand names shipped with
  ``drug-named-entity-recognition``.
- ICD-10-CM codes, to validate code-shaped strings.

The data files are read directly rather than through the libraries' APIs: the libraries build
large lookup structures we do not need (and ``simple_icd_10_cm`` uses a deprecated
importlib API that warns on import).
"""

from __future__ import annotations

import bz2
import importlib.util
import pickle
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import ahocorasick

from phigate.phi_scanner import findings as cat

# Words that make an ICD phrase administrative or generic rather than a condition a person
# would write about ("other specified", "initial encounter", "left").
GENERIC_WORDS = frozenset("""
other unspecified specified type and or of the in with without due to not elsewhere classified
nos nec initial encounter subsequent sequela left right bilateral unilateral part site sites
multiple single region regions status history personal family condition conditions disease
diseases disorder disorders problem problems finding findings abnormal abnormality use
effect effects certain general unknown complication complications acute chronic stage
degree first second third fourth fifth level severity mild moderate severe late early
upper lower anterior posterior lateral medial body system organ organs tissue skin
contact exposure exposed care screening examination exam observation follow-up counseling
fall falls burn burns injury injuries wound wounds open closed complete incomplete
primary secondary malignant benign neoplasm neoplasms lesion lesions mass pressure
related associated involving affecting following after during pregnancy birth newborn
child childhood adult age aged old infant male female man woman men women person persons
history life long term current drug drugs alcohol use misuse abuse dependence reaction
allergy allergic poisoning accidental intentional self-harm assault undetermined
death confusion atlas corrosion ecstasy blackout growth callus abrasion cloaca amelia
""".split())

ICD_SKIP_CHAPTERS = ("V", "W", "X", "Y", "Z")  # external causes and administrative codes
MIN_SINGLE_WORD = 5


@dataclass(frozen=True)
class VocabularyEntry:
    category: str
    confidence: float
    source: str


@dataclass
class Vocabulary:
    automaton: ahocorasick.Automaton
    icd_codes: frozenset[str]
    term_count: int


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"vocabulary package {name} is not installed")
    return Path(spec.origin).parent


def _clean(phrase: str) -> str:
    phrase = re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", phrase.lower())
    phrase = re.sub(r"\b(?:nos|nec)\b", " ", phrase)
    return re.sub(r"\s+", " ", phrase).strip(" ,;:-")


def _condition_phrases(description: str) -> set[str]:
    whole = re.sub(r",\s*(?:unspecified|not elsewhere classified|other)$", "",
                   _clean(description))
    phrases: set[str] = set()
    if whole and " " not in whole and len(whole) >= MIN_SINGLE_WORD and (
            whole not in GENERIC_WORDS):
        phrases.add(whole)  # the whole description is one word: "asthma", "obesity"
    for piece in re.split(r"[,;:]| with(?:out)? | due to | and | or | in | of | as ", whole):
        words = piece.strip().split()
        while words and words[0] in GENERIC_WORDS:
            words.pop(0)
        if not 2 <= len(words) <= 4:
            continue
        if all(word in GENERIC_WORDS for word in words) or any(
                ch.isdigit() for ch in piece):
            continue
        phrases.add(" ".join(words))
    return phrases


# Procedures: ICD-10-CM has no procedure list, but its status and history codes name the
# operations a patient has had ("gastric bypass status", "kidney transplant status",
# "Hip-joint replacement"). Those phrases, cut to the operation, are the procedure list.
PROCEDURE_HEADS = (r"transplant|bypass|banding|surgery|angioplasty|implant|extraction|ligation|"
                   r"replacement|dialysis|amputation|arthrodesis|graft|reassignment")
PROCEDURE_PHRASE = re.compile(
    rf"\b((?:[a-z]+[ -]){{0,2}}(?:joint[ -])?(?:{PROCEDURE_HEADS}))\b|"
    r"\b([a-z]{4,}(?:ectomy|ostomy|otomy|plasty))\b")


NOT_PROCEDURE_START = frozenset(
    "for to by identify removal require requiring from aftercare awaiting or following "
    "previous manual".split())
# "Presence of artificial knee joint": the joint was replaced.
ARTIFICIAL_JOINT = re.compile(r"\bartificial ([a-z]+) joint\b")


def _procedure_phrases(text: str) -> set[str]:
    phrases = set()
    for m in PROCEDURE_PHRASE.finditer(text.lower()):
        words = (m.group(1) or m.group(2)).replace("-", " ").split()
        while words and (words[0] in GENERIC_WORDS or words[0] in NOT_PROCEDURE_START):
            words.pop(0)
        if len(words) >= 2 or (words and m.group(2)):
            phrase = " ".join(words)
            phrases.add(phrase)
            phrases.add(phrase.replace(" joint ", " "))  # "knee joint replacement"
    for m in ARTIFICIAL_JOINT.finditer(text.lower()):
        phrases.update({f"{m.group(1)} replacement", f"{m.group(1)} joint replacement"})
    return phrases


def _icd_terms() -> tuple[set[str], set[str]]:
    data_dir = _package_dir("simple_icd_10_cm") / "data"
    xml_file = next(data_dir.glob("icd10c-tabular-*.xml"))
    # Trusted data shipped with an installed package, not user input.
    root = ElementTree.parse(xml_file).getroot()  # noqa: S314
    terms: set[str] = set()
    codes: set[str] = set()
    for diag in root.iter("diag"):
        code = (diag.findtext("name") or "").strip()
        codes.add(code.replace(".", ""))
        if code.startswith(ICD_SKIP_CHAPTERS) or len(code.replace(".", "")) > 5:
            continue
        texts = [diag.findtext("desc") or ""]
        for tag in ("inclusionTerm", "includes"):
            for holder in diag.findall(tag):
                texts.extend(note.text or "" for note in holder.findall("note"))
        for text in texts:
            terms.update(_condition_phrases(text))
    return terms, codes


def _icd_procedures() -> set[str]:
    data_dir = _package_dir("simple_icd_10_cm") / "data"
    xml_file = next(data_dir.glob("icd10c-tabular-*.xml"))
    root = ElementTree.parse(xml_file).getroot()  # noqa: S314 - trusted package data
    phrases: set[str] = set()
    for element in root.iter():
        if element.tag in ("desc", "note") and element.text and (
                "status" in element.text or "replacement" in element.text
                or "history" in element.text.lower() or "artificial" in element.text):
            phrases.update(_procedure_phrases(element.text))
    return phrases


def _drug_terms(ordinary: frozenset[str]) -> set[str]:
    data_file = _package_dir("drug_named_entity_recognition") / "drug_ner_dictionary.pkl.bz2"
    with bz2.open(data_file, "rb") as stream:
        data = pickle.load(stream)  # noqa: S301 - the installed package's own data file
    canonical_data = data["drug_canonical_to_data"]
    terms = set()
    for variant, canonicals in data["drug_variant_to_canonical"].items():
        # Drugs with a MedlinePlus or NHS page (the consumer-facing names people write:
        # "insulin" has only the latter), or a DrugBank entry that is no English word
        # ("propofol", "milrinone"; not "water", "oxygen").
        entries = [canonical_data.get(name, {}) for name in canonicals]
        consumer = any("medline_plus_id" in e or "nhs_url" in e for e in entries)
        if not consumer and not (any("drugbank_id" in e for e in entries)
                                 and variant not in ordinary):
            continue
        if re.fullmatch(r"[a-z][a-z-]{4,30}(?: [a-z][a-z-]{2,30})?", variant) and (
                variant not in GENERIC_WORDS):
            terms.add(variant)
    return terms


@lru_cache(maxsize=1)
def load_vocabulary() -> Vocabulary:
    """Build once per process (about a second); the automaton is shared by all scans."""
    from phigate.phi_scanner.census_lexicon import load_name_lexicon

    conditions, icd_codes = _icd_terms()
    medications = _drug_terms(load_name_lexicon().ordinary_words)
    procedures = _icd_procedures() - conditions
    automaton = ahocorasick.Automaton()
    for term in conditions:
        confidence = 0.8 if " " in term else 0.75
        automaton.add_word(term, (term, VocabularyEntry(cat.CONDITION, confidence, "ICD-10-CM")))
    for term in medications:
        automaton.add_word(term, (term, VocabularyEntry(cat.MEDICATION, 0.85, "drug name")))
    for term in procedures:
        automaton.add_word(term, (term, VocabularyEntry(cat.PROCEDURE, 0.8,
                                                        "ICD-10-CM procedure history")))
    automaton.make_automaton()
    return Vocabulary(automaton, frozenset(icd_codes),
                      len(conditions) + len(medications) + len(procedures))
