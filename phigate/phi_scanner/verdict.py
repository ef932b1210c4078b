"""From findings to a verdict: ``none``, ``identifiers`` or ``phi``.

PHI is health information *about an identifiable person*. So each identifier finding gets a
weight for how much it points at an individual: a patient's name or date of birth points
hard, the clinic's phone number or a bare date hardly at all (they fill every newsletter).
The message's identifier score is the strongest weighted identifier; its health score the
strongest health finding; the PHI score their product. A strong identifier (SSN, MRN,
health-plan number) with any health information is PHI on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.findings import Finding
from phigate.phi_scanner.recognizers.clinical_terms import is_clinical_note

# How much a finding of each category says about a specific person (before confidence).
IDENTIFIER_WEIGHTS: dict[str, float] = {
    cat.US_SSN: 1.0,
    cat.MEDICAL_RECORD_NUMBER: 1.0,
    cat.HEALTH_PLAN_NUMBER: 0.95,
    cat.ACCOUNT_NUMBER: 0.7,
    cat.LICENSE_NUMBER: 0.7,
    cat.VEHICLE_ID: 0.7,
    cat.DEVICE_ID: 0.8,
    cat.PERSON: 0.9,
    cat.RECIPIENT: 0.9,
    cat.STREET_ADDRESS: 0.35,
    cat.LOCATION: 0.25,
    cat.ZIP_CODE: 0.35,
    cat.DATE: 0.15,
    cat.AGE: 0.1,
    cat.PHONE_NUMBER: 0.3,  # mostly the practice's own number; a patient's needs more
    cat.FAX_NUMBER: 0.35,
    cat.EMAIL_ADDRESS: 0.5,
    cat.URL: 0.15,
    cat.IP_ADDRESS: 0.4,
}
# Finer weights by reason (the same category can point at a person or not).
REASON_WEIGHTS: dict[str, float] = {
    "clinician name": 0.15,
    # One capitalised word that the census lists as a name, with no cue: weak evidence of an
    # individual (it may be a surname in a firm's name or a place); runs of first name and
    # surname keep the full PERSON weight.
    "single name from lexicon": 0.5,
    "name-shaped words": 0.5,
    "date of birth": 0.95,
    "person-related date": 0.6,
    "year only": 0.0,
    "age over 89": 0.85,
}
#: In a clinical note (see :func:`is_clinical_note`) every identifier is about the patient's
#: care: the date of a procedure, the hospital they came from, the nurse who paged the
#: doctor. Those identifiers weigh at least this much there.
CLINICAL_NOTE_WEIGHT = 0.8
CLINICAL_NOTE_HEALTH = 0.6
#: What stays weak even in a clinical note: not Safe Harbor identifiers.
NOT_IN_CLINICAL_NOTE = frozenset({"year only", "age (89 or under)"})
STRONG_IDENTIFIERS = frozenset({cat.US_SSN, cat.MEDICAL_RECORD_NUMBER, cat.HEALTH_PLAN_NUMBER})


@dataclass(frozen=True)
class Thresholds:
    #: PHI score (identifier x health) from which a message is PHI. Recall-biased default.
    phi: float = 0.3
    #: Identifier score from which a message carries personal identifiers.
    identifiers: float = 0.25


def identifier_weight(finding: Finding, clinical_note: bool = False) -> float:
    weight = REASON_WEIGHTS.get(finding.reason, IDENTIFIER_WEIGHTS.get(finding.category, 0.0))
    if clinical_note and finding.reason not in NOT_IN_CLINICAL_NOTE:
        weight = max(weight, CLINICAL_NOTE_WEIGHT)
    return weight * finding.confidence


def judge(findings: Sequence[Finding], thresholds: Thresholds) -> tuple[str, float]:
    clinical_note = is_clinical_note(findings)
    identifier_score = max((identifier_weight(f, clinical_note) for f in findings
                            if f.category in cat.IDENTIFIER_CATEGORIES), default=0.0)
    health_score = max((f.confidence for f in findings if f.category in cat.HEALTH_CATEGORIES),
                       default=0.0)
    if clinical_note:
        # A clinical note records someone's care: that is health information already.
        health_score = max(health_score, CLINICAL_NOTE_HEALTH)
    phi_score = identifier_score * health_score
    strong = any(f.category in STRONG_IDENTIFIERS and f.confidence >= 0.8 for f in findings)
    if strong and health_score > 0:
        phi_score = max(phi_score, identifier_score)
    if phi_score >= thresholds.phi:
        return cat.VERDICT_PHI, phi_score
    if identifier_score >= thresholds.identifiers:
        return cat.VERDICT_IDENTIFIERS, identifier_score
    return cat.VERDICT_NONE, identifier_score


def verdict_outcome_is_settled(findings: Sequence[Finding], verdict: str) -> bool:
    """Whether more findings could not raise ``verdict``, ``judge``'s of ``findings`` (used
    to skip NER).

    Findings only ever add evidence, so once the cheap recognizers say ``phi`` nothing can
    change that; and with identifiers but no health information, more names cannot turn
    ``identifiers`` into ``phi`` either.
    """
    if verdict == cat.VERDICT_PHI:
        return True
    has_health = any(f.category in cat.HEALTH_CATEGORIES for f in findings)
    return verdict == cat.VERDICT_IDENTIFIERS and not has_health
