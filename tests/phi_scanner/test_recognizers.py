"""Each recognizer: true positives and the near-misses that must not fire."""

from __future__ import annotations

import pytest

from phigate.phi_scanner.health_vocabulary import load_vocabulary
from phigate.phi_scanner.recognizers.addresses import find_addresses
from phigate.phi_scanner.recognizers.contact import (
    find_emails,
    find_ip_addresses,
    find_phone_numbers,
    find_urls,
)
from phigate.phi_scanner.recognizers.cued_names import find_cued_names, is_clinician
from phigate.phi_scanner.recognizers.dates import find_dates
from phigate.phi_scanner.recognizers.health_terms import find_health_patterns, find_vocabulary_terms
from phigate.phi_scanner.recognizers.numbers import (
    find_ages,
    find_labelled_ids,
    find_ssns,
    find_zip_codes,
    luhn_valid,
)


def texts(findings, category=None):
    return [f.text for f in findings if category is None or f.category == category]


# --- SSN ------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["SSN: 123-45-6788", "social security number 512 34 9876",
                                  "His SSN is 512349876"])
def test_ssn_found(text):
    assert len(find_ssns(text, "t")) == 1


@pytest.mark.parametrize("text", [
    "Invoice number 123-45-6789X",    # part of a longer token
    "SSN 000-12-3456",               # area 000 never issued
    "SSN 666-12-3456",               # area 666 never issued
    "SSN 912-12-3456",               # 9xx are ITINs, not SSNs
    "SSN 123-00-4567",               # group 00
    "SSN 123-45-0000",               # serial 0000
    "Order 512349876 shipped",       # nine bare digits without an SSN label
])
def test_ssn_near_misses(text):
    assert find_ssns(text, "t") == []


def test_invoice_number_is_an_account_number_not_an_ssn(scanner):
    result = scanner.scan_text("Invoice number 123-45-6789 is due on receipt.")
    assert "US_SSN" not in result.categories
    assert "ACCOUNT_NUMBER" in result.categories


# --- labelled identifiers ----------------------------------------------------------------

@pytest.mark.parametrize("text,category,value", [
    ("MRN: 00482913", "MEDICAL_RECORD_NUMBER", "00482913"),
    ("Medical record # MR-553201", "MEDICAL_RECORD_NUMBER", "MR-553201"),
    ("Member ID XKH123456789", "HEALTH_PLAN_NUMBER", "XKH123456789"),
    ("Medicare MBI 1EG4-TE5-MK72", "HEALTH_PLAN_NUMBER", "1EG4-TE5-MK72"),
    ("Account number: 88231907", "ACCOUNT_NUMBER", "88231907"),
    ("DEA number AB1234563", "LICENSE_NUMBER", "AB1234563"),
    ("pacemaker serial number PM4471920", "DEVICE_ID", "PM4471920"),
])
def test_labelled_identifiers(text, category, value):
    assert value in texts(find_labelled_ids(text, "t"), category)


def test_labels_without_a_number_are_not_identifiers():
    text = "Call Member Services about your plan year and account settings."
    assert find_labelled_ids(text, "t") == []


def test_vin_needs_a_valid_check_digit():
    assert texts(find_labelled_ids("car 1HGCM82633A004352", "t"), "VEHICLE_ID")
    assert not texts(find_labelled_ids("car 1HGCM82635A004352", "t"), "VEHICLE_ID")


def test_luhn():
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")


# --- contact identifiers ----------------------------------------------------------------

def test_email_url_ip():
    text = "Write to jane.doe@example.org, see https://portal.example.org/x. From 10.1.2.3."
    assert texts(find_emails(text, "t")) == ["jane.doe@example.org"]
    assert texts(find_urls(text, "t")) == ["https://portal.example.org/x"]
    assert texts(find_ip_addresses(text, "t")) == ["10.1.2.3"]
    assert find_ip_addresses("version 1.2.3.400 of the app", "t") == []


@pytest.mark.parametrize("text,value", [
    ("Call us at (617) 555-0123 today", "(617) 555-0123"),
    ("Mobile: 079 2718 1155", "079 2718 1155"),
    ("+41 (0)69 979 80 58 is the desk", "+41 (0)69 979 80 58"),
    ("They're not answering at 71-33-52-22", "71-33-52-22"),
])
def test_phone_numbers(text, value):
    assert value in texts(find_phone_numbers(text, "t"))


def test_fax_is_told_apart():
    found = find_phone_numbers("Fax: 617-555-0199", "t")
    assert [f.category for f in found] == ["FAX_NUMBER"]


@pytest.mark.parametrize("text", ["Total: 1,234,567 visits", "Dated 2024-03-01",
                                  "We served 12345 patients"])
def test_phone_near_misses(text):
    assert find_phone_numbers(text, "t") == []


# --- geography --------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [
    ("Send it to 14 Crown Street, Suite 321", "14 Crown Street, Suite 321"),
    ("lives at Hammarvägen 15", "Hammarvägen 15"),
    ("at Rue de Piétrain 371", "Rue de Piétrain 371"),
    ("The bus station is on P.O. Box 104", "P.O. Box 104"),
])
def test_street_addresses(text, value):
    assert value in texts(find_addresses(text, "t"), "STREET_ADDRESS")


@pytest.mark.parametrize("text", ["Take 2 tablets with water", "The visit takes 15 minutes",
                                  "Your appointment is at 3 with Dr. Lee",
                                  "Reply via email 2 times a day"])
def test_address_near_misses(text):
    assert texts(find_addresses(text, "t"), "STREET_ADDRESS") == []


def test_city_state_and_zip():
    text = "Riverside Clinic\nSpringfield, IL 62704\n"
    assert texts(find_addresses(text, "t"), "LOCATION") == ["Springfield, IL"]
    assert texts(find_zip_codes(text, "t")) == ["62704"]
    assert find_zip_codes("We raised 25000 dollars", "t") == []


# --- dates and ages ---------------------------------------------------------------------

def test_date_of_birth_and_person_dates():
    found = {f.text: f.reason for f in find_dates(
        "DOB: 03/14/1951. Admitted on March 3, 2025. Office closed July 4.", "t")}
    assert found["03/14/1951"] == "date of birth"
    assert found["March 3, 2025"] == "person-related date"
    assert found["July 4"] == "date"


def test_may_the_month_versus_may_the_name(scanner):
    assert texts(find_dates("See you May 5 at noon", "t")) == ["May 5"]
    assert find_dates("May Chen called about her results", "t") == []
    result = scanner.scan_text("Dear May Chen, thank you.")
    assert [(f.category, f.text) for f in result.findings] == [("PERSON", "May Chen")]


def test_ages_over_89_are_identifiers():
    found = find_ages("The patient is a 92-year-old woman; her son is 45 years old.", "t")
    reasons = {f.text: f.reason for f in found}
    assert reasons == {"92": "age over 89", "45": "age (89 or under)"}
    assert find_ages("Take 2 tablets twice a day for 10 days", "t") == []


# --- names ------------------------------------------------------------------------------

def test_cued_names():
    text = ("Dear Maria Lopez,\nPatient: John O'Neill\nMr. Ortiz called.\n"
            "Signed, Helen Ward, MD\n")
    found = find_cued_names(text, "t")
    assert {"Maria Lopez", "John O'Neill", "Ortiz", "Helen Ward"} <= set(texts(found))
    assert [f.text for f in found if is_clinician(f)] == ["Helen Ward"]


@pytest.mark.parametrize("text", ["Dear Patient,", "Hi everyone,", "Dear Valued Customer,",
                                  "Hello Friends", "Name: "])
def test_generic_salutations_are_not_names(text):
    assert find_cued_names(text, "t") == []


def test_ner_finds_names_without_cues(scanner):
    result = scanner.scan_text("Yesterday Sarah Whitfield picked up the forms.")
    assert "Sarah Whitfield" in texts(result.findings, "PERSON")


# --- health -----------------------------------------------------------------------------

def test_vocabulary_conditions_and_medications():
    vocabulary = load_vocabulary()
    text = "History of type 2 diabetes mellitus and asthma; takes metformin and Lipitor."
    found = find_vocabulary_terms(text, "t", vocabulary)
    assert {"diabetes mellitus", "asthma"} <= set(texts(found, "CONDITION"))
    assert {"metformin", "Lipitor"} <= set(texts(found, "MEDICATION"))
    # whole words only: "asthmatic" is not "asthma" plus junk, "coat" is not "oat"
    assert find_vocabulary_terms("the asthmaticx report", "t", vocabulary) == []


def test_codes_labs_and_procedures():
    vocabulary = load_vocabulary()
    text = ("Dx E11.9; CPT 99213. Your A1c was 8.2% and LDL 160 mg/dL. "
            "Colonoscopy scheduled. Order 12345 shipped. Room E11 is free.")
    found = find_health_patterns(text, "t", vocabulary)
    assert texts(found, "MEDICAL_CODE") == ["E11.9", "99213"]
    assert {"A1c was 8.2%", "LDL 160 mg/dL"} <= set(texts(found, "LAB_RESULT"))
    assert "Colonoscopy" in texts(found, "PROCEDURE")
