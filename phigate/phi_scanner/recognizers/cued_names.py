"""Names of people found from cues: salutations, labels and titles.

These cheap patterns catch the names that matter most in practice mail ("Dear Maria Lopez",
"Patient: John Smith", "Mr. Ortiz") without the NER model; NER
(:mod:`phigate.phi_scanner.nlp`) adds names that appear without a cue. A clinician's name
("Dr. Chen", "Sarah Chen, MD") is still a PERSON finding, but its reason says so: it
identifies the provider, not a patient."""

from __future__ import annotations

import re

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.findings import Finding

NAME_WORD = (r"(?:(?:[A-Z]['’])?[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ]+(?:[-'][A-ZÀ-ÖØ-Þa-zà-öø-ÿ][a-zà-öø-ÿ]+)?"
             r"|[A-Z]\.)")
FULL_NAME = rf"{NAME_WORD}(?:[ \t]+{NAME_WORD}){{0,3}}"

# Words that follow a salutation or a title but are not names.
NOT_NAMES = frozenset("""
patient patients parent parents guardian member members friend friends colleague colleagues
team all everyone there sir madam valued customer customers neighbor neighbors neighbour
resident residents family families client clients provider providers doctor doctors
subscriber subscribers reader readers staff community parents mom dad folks partner
partners participant participants user users you your our the a an this that
morning afternoon evening and or to from with for of on in at
monday tuesday wednesday thursday friday saturday sunday
january february march april june july august september october november december
""".split())

SALUTATION = re.compile(
    rf"\b(?:Dear|Hi|Hello|Hey|Good (?:morning|afternoon|evening)|Greetings|Attn:?|"
    rf"Attention:?)[ \t]+(?:(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?[ \t]+)?({FULL_NAME})")
LABELLED = re.compile(
    rf"(?im)\b(?:patient(?:'s)?(?: full)? name|patient|pt|name|full name|member name|"
    rf"member|resident|guarantor|insured|subscriber|parent/guardian|guardian|"
    rf"emergency contact|next of kin|child|spouse|caregiver|client|"
    rf"recipient)[ \t]*[:#-][ \t]*((?-i:{FULL_NAME}))")
SELF_INTRODUCTION = re.compile(
    rf"\b(?:[Mm]y name is|[Mm]y name's|[Cc]alls? me|I am|I'm|[Tt]his is|[Nn]amed|[Ss]igned,?)"
    rf"[ \t]+({FULL_NAME})")
TITLED = re.compile(rf"\b(Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Nurse|Sister)\.?[ \t]+({FULL_NAME})")
CREDENTIALED = re.compile(
    rf"\b({NAME_WORD}(?:[ \t]+{NAME_WORD}){{1,3}}),?[ \t]+(?:MD|M\.D\.|DO|D\.O\.|NP|FNP|"
    rf"FNP-C|RN|PA-C|PA|DDS|DMD|PhD|LCSW|PharmD|DPM|OD|DC|CNM|MSN|APRN)\b")

CLINICIAN_TITLES = ("Dr", "Prof", "Nurse", "Sister")


def _trim(name: str) -> str:
    """Drop trailing non-name words the greedy pattern took ("Maria Lopez Your")."""
    tokens = name.split()
    while tokens and tokens[-1].lower().rstrip(".") in NOT_NAMES:
        tokens.pop()
    return " ".join(tokens)


def find_cued_names(text: str, part: str) -> list[Finding]:
    results: list[Finding] = []

    def add(start: int, raw: str, confidence: float, reason: str) -> None:
        name = _trim(raw)
        if not name or name.split()[0].lower().rstrip(".") in NOT_NAMES:
            return
        if len(name) < 2 or (len(name) == 2 and name.endswith(".")):
            return
        results.append(Finding(cat.PERSON, name, start, start + len(name), part, confidence,
                               reason))

    for m in SALUTATION.finditer(text):
        add(m.start(1), m.group(1), 0.85, "salutation")
    for m in LABELLED.finditer(text):
        add(m.start(1), m.group(1), 0.9, "labelled name")
    for m in SELF_INTRODUCTION.finditer(text):
        if m.group().startswith(("I am", "I'm")) and len(m.group(1).split()) < 2:
            continue  # "I'm Happy", "I am Glad": one capitalised word is too weak
        add(m.start(1), m.group(1), 0.8, "introduction")
    for m in TITLED.finditer(text):
        clinician = m.group(1) in CLINICIAN_TITLES
        add(m.start(2), m.group(2), 0.85, "clinician name" if clinician else "name with title")
    for m in CREDENTIALED.finditer(text):
        add(m.start(1), m.group(1), 0.85, "clinician name")
    return results


def is_clinician(finding: Finding) -> bool:
    return finding.category == cat.PERSON and finding.reason.startswith("clinician")
