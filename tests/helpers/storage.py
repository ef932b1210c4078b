"""The storage matrix (Mailman's ``{,-pg}``): a fixture parametrised with :data:`BACKENDS`
runs its tests on SQLite and on PostgreSQL, :func:`backend_url` is its database and
:func:`migrated_store` the queue store on it.

    @pytest.fixture(params=BACKENDS)
    def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
        return backend_url(request, tmp_path)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from phigate.queue.crypto import MasterKey
from phigate.queue.db import make_engine, upgrade
from phigate.queue.store import SqlQueueStore

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh SQLite file, or a fresh PostgreSQL database (``pg_url``: it skips, with the
    reason, where no PostgreSQL server binaries exist)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}"
    return str(request.getfixturevalue("pg_url"))


@contextmanager
def migrated_store(url: str, master_key_file: Path) -> Iterator[SqlQueueStore]:
    """A sealed queue store on ``url`` with every migration applied; its engine is disposed
    afterwards (PostgreSQL reports a connection left open by the test that leaked it)."""
    engine = make_engine(url)
    upgrade(engine)
    try:
        yield SqlQueueStore(engine, MasterKey.load(master_key_file))
    finally:
        engine.dispose()
