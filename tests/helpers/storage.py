"""The storage matrix (Mailman's ``{,-pg}``): a fixture parametrised with :data:`BACKENDS`
runs its tests on SQLite and on PostgreSQL, and :func:`backend_url` is its database.

    @pytest.fixture(params=BACKENDS)
    def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
        return backend_url(request, tmp_path)
"""

from __future__ import annotations

from pathlib import Path

import pytest

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh SQLite file, or a fresh PostgreSQL database (``pg_url``: it skips, with the
    reason, where no PostgreSQL server binaries exist)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}"
    return str(request.getfixturevalue("pg_url"))
