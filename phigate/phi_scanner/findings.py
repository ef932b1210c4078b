"""What the scanner reports: findings, the per-message result, and redaction.

This module is deliberately light (stdlib only): the relay, the policy and the admin screens
import it without paying for the NLP model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Personal identifiers (HIPAA Safe Harbor, the ones that can appear in text).
PERSON = "PERSON"
STREET_ADDRESS = "STREET_ADDRESS"
LOCATION = "LOCATION"  # a city, county or town (smaller than a state)
ZIP_CODE = "ZIP_CODE"
DATE = "DATE"
AGE = "AGE"
PHONE_NUMBER = "PHONE_NUMBER"
FAX_NUMBER = "FAX_NUMBER"
EMAIL_ADDRESS = "EMAIL_ADDRESS"
URL = "URL"
IP_ADDRESS = "IP_ADDRESS"
US_SSN = "US_SSN"
MEDICAL_RECORD_NUMBER = "MEDICAL_RECORD_NUMBER"
HEALTH_PLAN_NUMBER = "HEALTH_PLAN_NUMBER"
ACCOUNT_NUMBER = "ACCOUNT_NUMBER"
LICENSE_NUMBER = "LICENSE_NUMBER"
VEHICLE_ID = "VEHICLE_ID"
DEVICE_ID = "DEVICE_ID"
#: The message's addressee, told about their own health ("your biopsy results are ready"):
#: the address identifies the patient even when the body names nobody.
RECIPIENT = "RECIPIENT"

# Health information.
CONDITION = "CONDITION"
MEDICATION = "MEDICATION"
PROCEDURE = "PROCEDURE"
LAB_RESULT = "LAB_RESULT"
MEDICAL_CODE = "MEDICAL_CODE"
#: A care relationship: an appointment, a visit, "your doctor". Weak alone, but it makes a
#: patient's name PHI (that a person is a practice's patient is itself health information).
ENCOUNTER = "ENCOUNTER"

IDENTIFIER_CATEGORIES = frozenset({
    PERSON, STREET_ADDRESS, LOCATION, ZIP_CODE, DATE, AGE, PHONE_NUMBER, FAX_NUMBER,
    EMAIL_ADDRESS, URL, IP_ADDRESS, US_SSN, MEDICAL_RECORD_NUMBER, HEALTH_PLAN_NUMBER,
    ACCOUNT_NUMBER, LICENSE_NUMBER, VEHICLE_ID, DEVICE_ID, RECIPIENT,
})
HEALTH_CATEGORIES = frozenset({CONDITION, MEDICATION, PROCEDURE, LAB_RESULT, MEDICAL_CODE,
                               ENCOUNTER})

VERDICT_NONE = "none"
VERDICT_IDENTIFIERS = "identifiers"
VERDICT_PHI = "phi"


@dataclass(frozen=True, init=False)
class Finding:
    """One recognised span. ``start``/``end`` are offsets into the extracted text of ``part``.

    ``confidence`` is how sure the recognizer is that the span *is* of ``category``; how much
    the finding says about an individual (a patient's name vs. a clinic's phone number) is
    decided by the verdict, from the category and ``reason``.
    """

    category: str
    text: str
    start: int
    end: int
    part: str
    confidence: float
    reason: str

    def __init__(self, category: str, text: str, start: int, end: int, part: str,
                 confidence: float, reason: str) -> None:
        # The __init__ a frozen dataclass generates sets each field through
        # object.__setattr__ (~2.3 us a finding); a practice message has ~250 findings (a
        # footer row's URL and phone number in every row, rebuilt from the paragraph cache
        # on every scan), so they are written into the instance's dict directly, 4x faster.
        # Frozen still: assignment after __init__ raises, as before (issue 16).
        fields = self.__dict__
        fields["category"] = category
        fields["text"] = text
        fields["start"] = start
        fields["end"] = end
        fields["part"] = part
        fields["confidence"] = confidence
        fields["reason"] = reason

    def to_json(self, *, include_text: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "category": self.category,
            "start": self.start,
            "end": self.end,
            "part": self.part,
            "confidence": round(self.confidence, 3),
            "reason": self.reason,
        }
        if include_text:
            data = {"category": self.category, "text": self.text, **data}
        return data


@dataclass(frozen=True)
class ScanResult:
    verdict: str  # "none" | "identifiers" | "phi"
    score: float
    categories: list[str]  # sorted, unique
    findings: list[Finding]
    notes: list[str] = field(default_factory=list)

    @property
    def unscannable(self) -> bool:
        return any(note.startswith("unscannable") for note in self.notes)

    def to_json(self, *, include_text: bool) -> dict[str, Any]:
        """The interface-contract shape; ``include_text=False`` for anything that is logged."""
        return {
            "verdict": self.verdict,
            "score": round(self.score, 3),
            "categories": list(self.categories),
            "findings": [finding.to_json(include_text=include_text) for finding in self.findings],
            "notes": list(self.notes),
        }

    def without_findings(self) -> ScanResult:
        """The verdict, score, categories and notes: what the relay's policy decides on.

        The findings are left out: each holds the matched text (PHI) and a practice message
        gives hundreds (a footer's URL in every row), which made them most of a pool
        result's bytes and ~1.2 ms of unpickling per message in the relay (issue 16).
        """
        return ScanResult(self.verdict, self.score, list(self.categories), [], list(self.notes))

    @classmethod
    def unscannable_result(cls, reason: str) -> ScanResult:
        """Fail closed: what cannot be scanned is treated as PHI."""
        return cls(verdict=VERDICT_PHI, score=1.0, categories=[], findings=[],
                   notes=[f"unscannable: {reason}"])


def redact(text: str, findings: Sequence[Finding]) -> str:
    """Render ``text`` with every finding replaced by ``[CATEGORY]``.

    Overlapping findings are merged: the earliest-starting one names the replaced region, so
    no fragment of a longer overlapping finding survives.
    """
    pieces: list[str] = []
    cursor = 0
    for finding in sorted(findings, key=lambda f: (f.start, -f.end)):
        start, end = max(finding.start, 0), min(finding.end, len(text))
        if end <= cursor or start >= end:
            continue
        if start >= cursor:
            pieces.append(text[cursor:start])
            pieces.append(f"[{finding.category}]")
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)
