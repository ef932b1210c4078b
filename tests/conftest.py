"""Fixtures shared by the whole suite: TLS material, PostgreSQL, settings, a running relay.

The queue-level fixtures are parametrised over SQLite and PostgreSQL (Mailman's ``{,-pg}``
matrix): a test that takes ``db_url`` runs on both. PostgreSQL tests skip, with the reason,
only where no PostgreSQL server binaries exist; ``.ci/run`` installs them.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import secrets
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trustme
from helpers.net import free_port
from helpers.postgres import PostgresCluster, start_cluster
from helpers.storage import BACKENDS, backend_url
from helpers.tls_sink import TlsSink, started_tls_sink

from phigate.config import Settings, settings_from_mapping
from phigate.queue.crypto import MasterKey
from phigate.queue.db import make_engine, upgrade
from phigate.runtime import Runtime


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def relay_tls_files(test_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory
                    ) -> tuple[Path, Path]:
    """Certificate and key of the relay under test, valid for 127.0.0.1 and localhost."""
    directory = tmp_path_factory.mktemp("relay-tls")
    cert = test_ca.issue_cert("127.0.0.1", "localhost", "relay.practice.test")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


@pytest.fixture(scope="session")
def client_tls(test_ca: trustme.CA) -> ssl.SSLContext:
    """What a careful client uses: verifies the relay's certificate against the test CA."""
    context = ssl.create_default_context()
    test_ca.configure_trust(context)
    return context


@pytest.fixture
def tls_sink(test_ca: trustme.CA, tmp_path: Path) -> Iterator[TlsSink]:
    """A next hop offering STARTTLS with a certificate the test CA signed (helpers.tls_sink)."""
    with started_tls_sink(test_ca, tmp_path) as sink:
        yield sink


# -- PostgreSQL --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str | None]:
    """Base URL of a PostgreSQL server for the session, or None if none can run here."""
    existing = os.environ.get("PHIGATE_TEST_PG_URL")
    if existing:
        yield existing.rstrip("/")
        return
    cluster: PostgresCluster | None = start_cluster()
    if cluster is None:
        yield None
        return
    try:
        yield cluster.server_url
    finally:
        cluster.stop()


def _plain_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def pg_url(postgres_server: str | None) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL server."""
    if postgres_server is None:
        pytest.skip("PostgreSQL server binaries are not installed (.ci/run installs them)")
    name = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(_plain_url(f"{postgres_server}/postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{postgres_server}/{name}"
    # A connection the test left open (an engine never disposed) is reported here, by the
    # test that leaked it, rather than by whichever later garbage collection finds it.
    gc.collect()
    with psycopg.connect(_plain_url(f"{postgres_server}/postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run the test on SQLite and on PostgreSQL."""
    return backend_url(request, tmp_path)


# -- settings and runtime ----------------------------------------------------------------


@pytest.fixture
def master_key_file(tmp_path: Path) -> Path:
    path = tmp_path / "master.key"
    MasterKey.generate().write(path)
    return path


@pytest.fixture
def make_settings(
    tmp_path: Path, db_url: str, master_key_file: Path, relay_tls_files: tuple[Path, Path]
) -> Callable[..., Settings]:
    """Settings for a relay on free loopback ports; sections override with dicts."""

    def make(**sections: dict[str, Any]) -> Settings:
        cert, key = relay_tls_files
        raw: dict[str, dict[str, Any]] = {
            "server": {"domain": "practice.test", "hostname": "relay.practice.test",
                       "state_dir": str(tmp_path)},
            "submission": {"listen": f"127.0.0.1:{free_port()}", "tls_cert": str(cert),
                           "tls_key": str(key)},
            "storage": {"url": db_url, "master_key_file": str(master_key_file)},
            "http": {"listen": f"127.0.0.1:{free_port()}"},
            "feedback": {"listen": f"127.0.0.1:{free_port()}"},
            "scanner": {"enabled": False},
            "policy": {"postal_address": "Practice Test, 1 Main St, Springfield, IL 62701"},
        }
        for section, values in sections.items():
            raw.setdefault(section, {}).update(values)
        return settings_from_mapping(raw)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    migrate(settings.storage.url)
    opened = Runtime.open(settings)
    yield opened
    opened.close()


# -- a running relay ---------------------------------------------------------------------


@dataclasses.dataclass
class RelayHandle:
    settings: Settings
    runtime: Runtime
    running: Any

    @property
    def port(self) -> int:
        return self.settings.submission.listen.port


def migrate(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()


@pytest.fixture
def relay_factory(
    make_settings: Callable[..., Settings],
) -> Callable[..., AbstractAsyncContextManager[Any]]:
    """``async with relay_factory(roles, **sections) as running``: services on this loop."""
    from phigate.serve import start_services, stop_services

    @asynccontextmanager
    async def start(roles: tuple[str, ...] = ("smtp",), **sections: dict[str, Any]
                    ) -> AsyncIterator[Any]:
        settings = make_settings(**sections)
        migrate(settings.storage.url)
        running = await start_services(settings, set(roles))
        try:
            yield running
        finally:
            await stop_services(running, grace=2)

    return start


@pytest.fixture
async def relay(runtime: Runtime, settings: Settings) -> AsyncIterator[RelayHandle]:
    """The submission service, started in the test's event loop; a user ``clinic``."""
    from phigate.serve import start_services, stop_services

    runtime.accounts.add("clinic", "correct horse", senders=["practice.test"],
                         classes=["treatment", "operations", "marketing"])
    running = await start_services(settings, {"smtp"})
    try:
        yield RelayHandle(settings, running.runtime, running)
    finally:
        await stop_services(running, grace=2)
