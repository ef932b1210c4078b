"""Clinical shorthand: the abbreviations of notes, referral letters and messages between
providers (``s/p CABG x3``, ``r/o MI``, ``CHF``, ``PRBC``, ``ETT``, ``vanco``, ``NSTEMI``).

No package ships a clinical abbreviation list, so this one is written here, short and
limited to abbreviations that mean one clinical thing. Two-letter and word-like ones ("MI",
"PE", "CA", "CAD", "OR") count only in capitals; the rest in any case, since a note in
lower case writes "chf" and "cabg". Note shorthand (``s/p``, ``h/o``, ``y/o``, ``PMH``,
``q4h``...) is not health information about anyone by itself, but several of them mark a
text as a clinical note, which the verdict uses: every identifier in a clinical note is
about the patient's care.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.findings import Finding

REASON_ABBREVIATION = "clinical abbreviation"
REASON_SHORTHAND = "clinical note shorthand"

CONDITIONS = """
NSTEMI STEMI CHF CAD COPD HTN NIDDM IDDM CVA TIA DVT UTI ARF ESRD CKD AFIB A-FIB PNA GIB
AAA PVD HCV HBV ICH SAH SBO MRSA VRE NSVT SVT CHB ARDS OSA GERD BPH CHB LBBB RBBB AFLUTTER
HLD DKA CRI CRF ATN ALS MS-CHANGES SDH AMS ESLD NASH ETOH-ABUSE HYPERK HYPOK IHSS CMP DJD
"""
CONDITIONS_UPPER = "MI PE DM CA AF VF VT CP SOB HF RA PNA MR AS AI TR"
PROCEDURES = """
CABG PTCA PCI ERCP EGD TEE TTE CXR EKG ECG PEG PICC CVVH CVVHD CVVHDF IABP LVAD RVAD BIVAD
TPN AVR MVR TAVR TAH BSO ORIF THR TKR PPM AICD BRONCH TRACH THORACENTESIS PARACENTESIS
EXTUBATED INTUBATED REINTUBATED EXTUBATION INTUBATION CARDIOVERSION ABLATION ANGIOPLASTY
STENTED FEMPOP VATS ETT NGT OGT A-LINE
"""
PROCEDURES_UPPER = "CT MRI HD LP IR ICD EP CATH ECHO STENT PACER ANGIO SWAN ALINE"
MEDICATIONS = """
PRBC PRBCS FFP VANCO LEVOPHED ZOSYN ABX NTG KCL KAYEXALATE LOPRESSOR DOBUTAMINE
NEOSYNEPHRINE PRESSORS INSULIN HEPARIN LOVENOX FLAGYL CIPRO AMIODARONE CAPTOPRIL
VERSED NIPRIDE INTEGRILIN PLAVIX COUMADIN
"""
MEDICATIONS_UPPER = "ASA MSO4 MGSO4 NS LR D5W LEVO DOPA NEO HEP AMIO DILT NITRO DIG TPA TNK"
LABS = "ABG ABGS CBC INR PTT HCT WBC BUN LFTS LYTES CPK TROP BNP LACTATE"
LABS_UPPER = "CR PLT K MG"  # not PT: in notes it is the patient far more often
# Note shorthand: marks a clinical note, says nothing alone.
SHORTHAND = re.compile(
    r"(?i)(?<![\w/])(?:s/p|h/o|c/o|r/o|y/o|w/u|f/u|d/c'?d|u/o|a&ox?\d?|i&o|n/v|pmh|pmhx|hpi|"
    r"nkda|prn|npo|oob|dnr|dni|vss|gtts?|q\d{1,2}h|qd|bid|tid|qid|qhs|afebrile|tmax|"
    r"sats|micu|ccu|sicu|csru|nsicu|dispo|resp|neuro|npn|nsg|pt's|pt)(?![\w/])")
# What a note records being done to a patient, and bedside measurements ("BP 90/60", "HR 72",
# "5 mg", "20 cc/hr"): more marks of a clinical note.
CARE_ACTIONS = re.compile(
    r"(?i)\b(?:made aware|notified|in to (?:see|examine|eval(?:uate)?)|examined|ordered|"
    r"titrated?|weaned|started on|bolused|transfused|pronounced|spoke with|discussed with|"
    r"medicated|sedated|suctioned|repleted|tolerating|afebrile|died|expired|satting|"
    r"(?:dr|md|np|rn|team|ho|resident)\.?[ \t]+(?:[a-z]+[ \t]+)?(?:is[ \t]+)?aware)\b")
MEASUREMENT = re.compile(
    r"(?i)\b(?:(?:bp|b/p|hr|rr|sbp|map|cvp|sats?|spo2|temp|tmax)[ \t:]*\d{2,3}|"
    r"\d+(?:\.\d+)?[ \t]?(?:mg|mcg|meq|cc|cc/hr|ml/hr|units?/hr|u/hr|mmhg|l/min)\b)")
# Words that are abbreviations of units, services and roles: never names or places.
UNITS_AND_ROLES = """
ICU CCU MICU SICU CSRU NSICU PACU ER ED EW OR VNA PCP OSH RN MD NP PA RRT PT OT SW CM
NSG NPN MICU-A MICU-B CVICU CT-SURG CARDS ID GI GU HEME ONC RENAL RESP NEURO CV ENDO
MN NOC HS VA OSH EMS AMB ICU'S MEDFLIGHT LOC RUE LUE RLE LLE RLL LLL RUL LUL NC NRB
SOCIAL DISPO ACCESS SKIN PLAN HR BP RR CVP SBP MAP SAT SATS IV PO SQ IM PRN QD BID TID
PCU EVAL REHAB FLOOR CATH LAB STEPDOWN TELE SNF LTAC HOME DIALYSIS XRAY NEURO RESP CARDIAC
PULM PROPH PSYCHOSOCIAL COMFORT ACTIVITY DISPOSITION HEME MISC LINES ACCESS PAIN COPING
NPO OOB DNR DNI VSS LS CTA BS BM UO FOLEY ABD EXT TF TFS PEEP FIO2 CPAP BIPAP SIMV PS AC
AM PM NOC HS STAT NKA NKDA ADL ADLS HOH MAE PERRL A&O AOX3 OX3 WNL NAD FHP TX RX HX DX SX
"""


def _words(block: str) -> frozenset[str]:
    return frozenset(block.split())


ANY_CASE: dict[str, str] = {
    **dict.fromkeys(_words(CONDITIONS), cat.CONDITION),
    **dict.fromkeys(_words(PROCEDURES), cat.PROCEDURE),
    **dict.fromkeys(_words(MEDICATIONS), cat.MEDICATION),
    **dict.fromkeys(_words(LABS), cat.LAB_RESULT),
}
UPPER_ONLY: dict[str, str] = {
    **dict.fromkeys(_words(CONDITIONS_UPPER), cat.CONDITION),
    **dict.fromkeys(_words(PROCEDURES_UPPER), cat.PROCEDURE),
    **dict.fromkeys(_words(MEDICATIONS_UPPER), cat.MEDICATION),
    **dict.fromkeys(_words(LABS_UPPER), cat.LAB_RESULT),
}
#: Abbreviations only notes use (labs, lines, blood products), unlike the disease acronyms and
#: drug names a newsletter may print ("COPD", "insulin"): marks of a clinical note.
NOTE_ABBREVIATIONS = (_words(LABS) | _words(PROCEDURES)
                      | frozenset("PRBC PRBCS FFP VANCO ABX NTG KCL".split()))
NOT_NAME_ABBREVIATIONS = frozenset(ANY_CASE) | frozenset(UPPER_ONLY) | _words(UNITS_AND_ROLES)
def _alternation(words: dict[str, str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


# One pass each: the any-case list, and the capitals-only list (case-sensitive); a plural or
# possessive "s" may follow ("PRBC's").
ANY_CASE_TERM = re.compile(rf"(?i)(?<![\w/&-])(?:{_alternation(ANY_CASE)})(?:['’]?s)?(?![\w/&-])")
UPPER_TERM = re.compile(rf"(?<![\w/&-])(?:{_alternation(UPPER_ONLY)})(?:['’]?s)?(?![\w/&-])")
_PLURAL = re.compile(r"['’]?s$")


def find_clinical_terms(text: str, part: str) -> list[Finding]:
    results: list[Finding] = []
    for pattern, table in ((ANY_CASE_TERM, ANY_CASE), (UPPER_TERM, UPPER_ONLY)):
        for m in pattern.finditer(text):
            word = m.group()
            key = word.upper() if table is ANY_CASE else word
            category = table.get(key) or table.get(_PLURAL.sub("", key))
            if category is not None and not (table is UPPER_ONLY and _not_the_term(text, m)):
                results.append(Finding(category, word, m.start(), m.end(), part, 0.8,
                                       REASON_ABBREVIATION))
    for pattern in (SHORTHAND, CARE_ACTIONS, MEASUREMENT):
        for m in pattern.finditer(text):
            # Weak alone ("CPR course", "pt" in a sports mail): it makes no PHI by itself;
            # several of them make the text a clinical note (see the verdict).
            results.append(Finding(cat.ENCOUNTER, m.group(), m.start(), m.end(), part, 0.3,
                                   REASON_SHORTHAND))
    return results


# Capitals-only abbreviations that are also words or initials: "AS WELL AS", "MR JONES",
# "Magda K. Björklund". In capitals text case says nothing, so context decides.
WORD_LIKE_UPPER = frozenset("AS MR CA PE AI TR RA CP DM HF MG CR".split())
INITIAL_BETWEEN_NAMES = re.compile(r"\.[ \t]+[A-ZÀ-Þ][a-zß-ÿ]")
NAME_BEFORE = re.compile(r"[A-ZÀ-Þ][a-zß-ÿ]+[ \t]+$")
TITLE_WORD_AFTER = re.compile(r"\.?[ \t]+[A-Za-z]{2,}")
CAPITALS_WORD = re.compile(r"[A-Z]+\b")
CLINICAL_MODIFIER = re.compile(
    r"(?i)(?:\b(?:severe|mild|moderate|critical|trace|known|new|old|h/o|hx|s/p|r/o|w/|"
    r"with|for|of|2/2|\d\+)|[,;:(/])[ \t]*$")


def _not_the_term(text: str, m: re.Match[str]) -> bool:
    word = m.group()
    before = text[max(0, m.start() - 20):m.start()]
    if len(word) == 1:  # "Magda K. Björklund": a middle initial, not potassium
        return bool(NAME_BEFORE.search(before) and INITIAL_BETWEEN_NAMES.match(text, m.end()))
    if word not in WORD_LIKE_UPPER:
        return False
    if word == "MR" and TITLE_WORD_AFTER.match(text, m.end()) and not CLINICAL_MODIFIER.search(
            before):
        return True  # "MR JONES", "Mr. Smith" are titles
    if CLINICAL_MODIFIER.search(before) or text[m.end():m.end() + 2].strip()[:1] in (",", ";"):
        return False  # "severe AS", "PMH: CAD, DM, HTN"
    words_before = CAPITALS_WORD.findall(before)
    after = CAPITALS_WORD.match(text[m.end():m.end() + 20].lstrip(" \t"))
    return bool(words_before and before.rstrip()[-1:].isalpha() and after)


def is_clinical_note(findings: Sequence[Finding]) -> bool:
    """Two marks of a note (shorthand such as ``s/p`` or ``pt``, care actions, bedside
    measurements, note-only abbreviations such as ``ABG``, ``PICC``, ``PRBC``), or note
    shorthand beside health information.

    A newsletter full of general health words ("diabetes", "flu shot", "blood pressure",
    even "COPD", "MRI" and "insulin") has none of these marks, so it is not a clinical note.
    """
    shorthand = {f.text.lower() for f in findings if f.reason == REASON_SHORTHAND}
    abbreviations = {_PLURAL.sub("", f.text.upper()) for f in findings
                     if f.reason == REASON_ABBREVIATION} & NOTE_ABBREVIATIONS
    if len(shorthand) + len(abbreviations) >= 2:
        return True
    return bool(shorthand) and any(
        f.category in cat.HEALTH_CATEGORIES and f.confidence >= 0.75 for f in findings)
