"""Street addresses and phone numbers as they are written outside the US, and near-misses."""

from __future__ import annotations

import pytest

from phigate.phi_scanner.recognizers.addresses import find_addresses
from phigate.phi_scanner.recognizers.contact import find_phone_numbers
from phigate.phi_scanner.recognizers.dates import find_dates


def streets(text):
    return [f.text for f in find_addresses(text, "t") if f.category == "STREET_ADDRESS"]


@pytest.mark.parametrize("text,street", [
    ("Debra Neal\n3536 1659 Hoog St\n Apt. 839", "3536 1659 Hoog St"),  # building + house
    ("The office is at 233 Erzsébet tér 19.", "233 Erzsébet tér 19."),
    ("808 Kálmán Imre u. 12.\n Apt. 762", "808 Kálmán Imre u. 12."),
    ("The bus drops you off at 87818 Dalmatinova 68 St.", "87818 Dalmatinova 68 St."),
    ("Timotea lives on Via dei Fiorentini 17 street.", "Via dei Fiorentini 17 street"),
    ("Address: 76556 29 Rue de Tanger", "76556 29 Rue de Tanger"),
    ("6614 Luite tee 87\n Apt. 931", "6614 Luite tee 87"),
])
def test_international_street_addresses(text, street):
    assert any(street in found or found in street for found in streets(text)), streets(text)


@pytest.mark.parametrize("text", [
    "During 1971, the company invested heavily.",  # "-ring" word before a year
    "Take 2 Advil 200 mg at night",
    "We waited 15 minutes at the front desk.",
])
def test_not_street_addresses(text):
    assert streets(text) == []


@pytest.mark.parametrize("text,number", [
    ("Phone: 0378 3549890", "0378 3549890"),          # trunk code + one local block
    ("They're not answering at 99 668472", "99 668472"),
    ("Mobile: 03.93.92.16.85", "03.93.92.16.85"),
    ("(37) 788-063-Office", "(37) 788-063"),            # label after a hyphen
    ("07700 063 966-Fax", "07700 063 966"),
])
def test_local_and_international_phone_numbers(text, number):
    assert number in [f.text for f in find_phone_numbers(text, "t")]


def test_phone_numbers_do_not_cross_lines_or_take_house_numbers():
    found = [f.text for f in find_phone_numbers("APO AA 61487\n416 60 039 office", "t")]
    assert "61487\n416 60 039" not in found
    assert find_phone_numbers("Juliusz lives at 28919 136 Filadelfeos Str., Klirou", "t") == []


def test_a_phone_numbers_groups_are_not_a_date():
    assert find_dates("Mobile: 03.93.92.16.85", "t") == []
    assert [f.text for f in find_dates("Seen on 14.03.2025 and 03/14/2025", "t")] == [
        "14.03.2025", "03/14/2025"]
