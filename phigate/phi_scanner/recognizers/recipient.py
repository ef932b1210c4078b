"""The recipient as the identifier: statements about the addressee's own health.

"Your biopsy results are ready", "your A1C was 9.1", "your prescription for lisinopril is
ready": the body names nobody, but the message goes to the patient's address, which
identifies them, so it carries PHI. Health education addressed to "you" does not ("get your
flu shot this winter", "check your blood pressure regularly", "know your A1C target"): what
makes the difference is a result, a value or a ready order about *your* test or medicine.
"""

from __future__ import annotations

import re

from phigate.phi_scanner import findings as cat
from phigate.phi_scanner.findings import Finding

REASON = "health statement about the recipient"
QUALIFIER = r"(?:(?:recent|latest|last|new|updated|annual|most recent)[ \t]+)?"
# "your biopsy results are ready", "your MRI report is available", "your labs came back".
RESULT_NOUNS = (r"(?:(?:test|lab|blood|biopsy|pathology|imaging|screening|scan|mri|ct|x-?ray|"
                r"ultrasound|mammogram|colonoscopy|covid(?:-19)?|culture|urine)[ \t]+)?"
                r"(?:results?|report|findings|labs|lab work|blood ?work|biopsy|pathology|scan|"
                r"mri|ct scan|x-?rays?|ultrasound|mammogram)")
RESULT = re.compile(
    rf"(?i)\byour[ \t]+{QUALIFIER}{RESULT_NOUNS}\b[ \t]+(?:from[ \t]+[^.\n]{{1,30}}[ \t]+)?"
    r"(?:is|are|were|was|have|has)?[ \t]*(?:now[ \t]+)?(?:ready|available|back|in\b|normal|"
    r"abnormal|positive|negative|came back|show(?:s|ed)?|indicate[sd]?|confirm(?:s|ed)?|"
    r"been (?:reviewed|released|posted))")
# "your A1C was 9.1", "your cholesterol is high", "your blood pressure was 150/95".
MEASURE_NOUNS = (r"(?:hb)?a1c|hemoglobin a1c|cholesterol|ldl|hdl|triglycerides|psa|tsh|"
                 r"glucose|blood sugar|blood pressure|potassium|creatinine|egfr|vitamin d|"
                 r"iron|ferritin|bmi|weight|viral load|inr")
MEASURE = re.compile(
    rf"(?i)\byour[ \t]+{QUALIFIER}(?:{MEASURE_NOUNS})\b(?:[ \t]+(?:level|reading|result|"
    r"number))?[ \t]+(?:was|is|came back(?: at)?|measured|read|rose|dropped|went (?:up|down)"
    r")[ \t]+(?:at[ \t]+|a[ \t]+)?(?:\d|high|low|elevated|normal|abnormal|above|below|too)")
# "your prescription for lisinopril is ready", "your refill has been sent".
ORDER = re.compile(
    r"(?i)\byour[ \t]+(?:new[ \t]+)?(?:prescription|refill|medication|referral|prior "
    r"authorization)\b(?:[ \t]+(?:for|of)[ \t]+[^.\n]{1,40}?)?[ \t]+(?:is|are|has been|have "
    r"been|was)[ \t]+(?:now[ \t]+)?(?:ready|sent|filled|approved|renewed|due|waiting|"
    r"available|denied|transferred)")


def find_recipient_statements(text: str, part: str) -> list[Finding]:
    results: list[Finding] = []
    for pattern in (RESULT, MEASURE, ORDER):
        for m in pattern.finditer(text):
            results.append(Finding(cat.RECIPIENT, m.group(), m.start(), m.end(), part, 0.85,
                                   REASON))
            # The statement is also health information: a result or an order exists.
            results.append(Finding(cat.ENCOUNTER, m.group(), m.start(), m.end(), part, 0.7,
                                   REASON))
    return results
