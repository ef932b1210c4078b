"""Health information: conditions, medications, procedures, lab results and medical codes."""

from __future__ import annotations

import re

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.findings import Finding
from phigate.phi_scanner.health_vocabulary import Vocabulary
from phigate.phi_scanner.recognizers.context import before, has_cue

# Word-forming suffixes of clinical vocabulary; catches terms the lists miss
# ("cholecystectomy", "gastroenteritis", "neuropathy"). Long words only: "-oma" alone
# would also match "diploma".
CONDITION_SUFFIX = re.compile(
    r"\b[a-z]{4,}(?:itis|osis|emia|aemia|pathy|algia|penia|plegia|trophy|megaly|oma|"
    r"omas|orrhea|uria|lithiasis)\b", re.IGNORECASE)
PROCEDURE_SUFFIX = re.compile(
    r"\b[a-z]{3,}(?:ectomy|otomy|ostomy|plasty|scopy|graphy|gram|grams)\b", re.IGNORECASE)
NOT_CLINICAL = frozenset({"diploma", "aroma", "instagram", "program", "programs",
                          "telegram", "diagram", "diagrams", "kilogram", "kilograms",
                          "photography", "geography", "biography", "choreography",
                          "programme", "hologram", "anagram", "monogram", "histogram",
                          "stenography", "calligraphy", "cinematography", "bibliography",
                          "pornography", "typography", "topography", "cryptography",
                          "philosophy", "microscopy", "autoscopy",
                          "sympathy", "empathy", "apathy", "telepathy", "antipathy"})
# Procedures and services: ICD-10-CM has no procedure names, so the common ones people
# write in practice mail are listed here (PCS descriptions read nothing like email).
PROCEDURES = re.compile(
    r"\b(?:biopsy|biopsies|MRI|CT scan|CAT scan|PET scan|x-?rays?|ultrasound|sonogram|"
    r"surgery|surgeries|chemotherapy|chemo|radiation therapy|radiotherapy|dialysis|"
    r"physical therapy|occupational therapy|EKG|ECG|blood test|blood work|bloodwork|"
    r"lab work|labs|urinalysis|pap smear|pap test|vaccination|vaccine|immunization|"
    r"flu shots?|booster|infusion|injection|transfusion|stress test|sleep study|"
    r"prenatal|postpartum|physical exam|annual physical|well visit|screening|"
    r"follow-up visit|prescription|refill|therapy session|counseling session|"
    r"psychotherapy|rehab|rehabilitation|hospice|admitted|discharged|"
    r"diagnosed|diagnosis|prognosis|treatment plan|positive for|negative for|tested positive|"
    r"tested negative|pregnant|pregnancy|miscarriage|HIV|STD|STI)\b", re.IGNORECASE)
# Generic service words are weaker evidence than a named procedure.
WEAK_PROCEDURES = frozenset({"screening", "vaccine", "vaccination", "immunization", "flu shot",
                             "flu shots",
                             "booster", "prescription", "refill", "labs", "injection",
                             "physical exam", "annual physical", "well visit"})

LAB_NAMES = (
    r"(?:Hb)?A1c|hemoglobin A1c|hemoglobin|glucose|blood sugar|LDL|HDL|cholesterol|"
    r"triglycerides|TSH|T4|PSA|INR|creatinine|eGFR|GFR|BUN|potassium|sodium|WBC|RBC|"
    r"platelets?|hematocrit|BP|blood pressure|vitamin D|B12|ferritin|ALT|AST|BMI|"
    r"viral load|CD4|troponin|lipase|bilirubin|albumin|calcium|magnesium|iron|"
    r"heart rate|pulse|temperature|oxygen saturation|SpO2|O2 sat|weight")
# The unit is on the value's line, and no whitespace after a value without one is taken.
LAB_RESULT = re.compile(
    rf"\b(?:{LAB_NAMES})\b(?:\s+(?:level|levels|count|result|reading))?\s*(?:of|was|is|at|:|=|"
    r"came back(?: at)?)?\s*(?:\d+(?:\.\d+)?(?:/\d+)?(?:[ \t]*(?:%|mg/dL|mmol/L|mIU/L|ng/mL|"
    r"g/dL|U/L|mEq/L|K/uL|bpm|mmHg|kg|lbs?|°F|copies/mL))?|high|low|elevated|normal|"
    r"abnormal)", re.IGNORECASE)
ICD_CODE = re.compile(r"\b([A-TV-Z]\d{2}(?:\.[0-9A-Z]{1,4})?)\b")
CPT_CODE = re.compile(r"\b(\d{5}|\d{4}[FT])\b")
# Specialties name departments and practices ("Northgate Cardiology") as often as a
# patient's care, so they are weak evidence.
SPECIALTIES = re.compile(
    r"\b(?:cardiology|oncology|dermatology|neurology|orthopedics|pediatrics|psychiatry|"
    r"radiology|urology|gastroenterology|pulmonology|endocrinology|nephrology|obstetrics|"
    r"gynecology|OB/GYN)\b", re.IGNORECASE)
ENCOUNTER_TERMS = re.compile(
    r"\b(?:appointments?|appt|check-?ups?|office visits?|your visit|your (?:doctor|provider|"
    r"care team|physician|nurse|therapist|dentist)|patient portal|as a patient|our patient|"
    r"new patient|telehealth visit|video visit|consultation)\b", re.IGNORECASE)
CODE_CUES = ("icd", "icd-10", "icd10", "dx", "diagnosis", "diagnosis code", "code", "codes",
             "cpt", "procedure code", "hcpcs", "billing code")


def find_vocabulary_terms(text: str, part: str, vocabulary: Vocabulary) -> list[Finding]:
    lowered = text.lower()
    results: list[Finding] = []
    for end_index, (term, entry) in vocabulary.automaton.iter_long(lowered):
        start = end_index - len(term) + 1
        end = end_index + 1
        if (start > 0 and (lowered[start - 1].isalnum() or lowered[start - 1] == "-")) or (
                end < len(lowered) and (lowered[end].isalnum() or lowered[end] == "-")):
            continue  # inside a longer word
        results.append(Finding(entry.category, text[start:end], start, end, part,
                               entry.confidence, entry.source))
    return results


def find_health_patterns(text: str, part: str, vocabulary: Vocabulary) -> list[Finding]:
    results: list[Finding] = []
    for pattern, category, confidence, reason in (
        (CONDITION_SUFFIX, cat.CONDITION, 0.6, "clinical word form"),
        (PROCEDURE_SUFFIX, cat.PROCEDURE, 0.6, "clinical word form"),
    ):
        for m in pattern.finditer(text):
            if m.group().lower() not in NOT_CLINICAL:
                results.append(Finding(category, m.group(), m.start(), m.end(), part,
                                       confidence, reason))
    for m in PROCEDURES.finditer(text):
        weak = m.group().lower() in WEAK_PROCEDURES
        results.append(Finding(cat.PROCEDURE, m.group(), m.start(), m.end(), part,
                               0.5 if weak else 0.75, "clinical service term"))
    for m in SPECIALTIES.finditer(text):
        results.append(Finding(cat.PROCEDURE, m.group(), m.start(), m.end(), part, 0.45,
                               "medical specialty"))
    for m in ENCOUNTER_TERMS.finditer(text):
        results.append(Finding(cat.ENCOUNTER, m.group(), m.start(), m.end(), part, 0.45,
                               "care relationship"))
    for m in LAB_RESULT.finditer(text):
        results.append(Finding(cat.LAB_RESULT, m.group(), m.start(), m.end(), part, 0.8,
                               "lab name with value"))
    for m in ICD_CODE.finditer(text):
        code = m.group(1)
        cue = has_cue(before(text, m.start(), 30), CODE_CUES)
        if code.replace(".", "") in vocabulary.icd_codes and ("." in code or cue):
            results.append(Finding(cat.MEDICAL_CODE, code, m.start(1), m.end(1), part,
                                   0.9 if cue else 0.7, "ICD-10-CM code"))
    for m in CPT_CODE.finditer(text):
        if has_cue(before(text, m.start(), 25), ("cpt", "procedure code", "hcpcs",
                                                  "billing code", "cpt code")):
            results.append(Finding(cat.MEDICAL_CODE, m.group(1), m.start(1), m.end(1), part,
                                   0.85, "CPT code"))
    return results
