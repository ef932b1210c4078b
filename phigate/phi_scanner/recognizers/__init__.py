"""The cheap recognizers: patterns, cue words and lexicons, no model.

Each ``find_*`` function takes a text and its part name and returns findings; the scanner
runs them all over every segment, then NER only where it can still change the verdict.
"""

from __future__ import annotations

from collections.abc import Callable

from phigate.phi_scanner.findings import Finding
from phigate.phi_scanner.recognizers.care_dates import find_care_dates
from phigate.phi_scanner.recognizers.clinical_terms import find_clinical_terms
from phigate.phi_scanner.recognizers.contact import (
    find_emails,
    find_ip_addresses,
    find_pager_numbers,
    find_phone_numbers,
    find_urls,
)
from phigate.phi_scanner.recognizers.numbers import (
    find_ages,
    find_labelled_ids,
    find_ssns,
    find_zip_codes,
)
from phigate.phi_scanner.recognizers.recipient import find_recipient_statements

Recognizer = Callable[[str, str], list[Finding]]

PATTERN_RECOGNIZERS: tuple[Recognizer, ...] = (
    find_emails, find_urls, find_ip_addresses, find_ssns, find_labelled_ids,
    find_phone_numbers, find_pager_numbers, find_zip_codes, find_ages, find_care_dates,
    find_clinical_terms, find_recipient_statements,
)
