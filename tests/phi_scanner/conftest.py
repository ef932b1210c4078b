"""One Scanner (spaCy model and vocabularies) per test session: loading costs seconds."""

from __future__ import annotations

import pytest

from phigate.config import ScannerSettings
from phigate.phi_scanner import Scanner


@pytest.fixture(scope="session")
def scanner() -> Scanner:
    return Scanner(ScannerSettings(ner="always"))


@pytest.fixture(scope="session")
def auto_scanner() -> Scanner:
    return Scanner(ScannerSettings())
