"""Fuzzing runs against a SQLite relay only (the storage matrix is covered elsewhere), with
the AUTH lockout raised so random wrong passwords do not lock the fuzzer out mid-run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from phigate.config import Settings


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'queue.db'}"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(submission={"auth_max_failures": 100_000, "timeout_seconds": 30})
