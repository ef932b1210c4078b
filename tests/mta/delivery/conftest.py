"""Fixtures for delivery tests: a test CA, a DNS server, scriptable SMTP sinks and SMTP clients
pointed at them."""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from helpers.dns_server import DnsServer
from helpers.net import free_port
from helpers.smtp_sink import SmtpSink
from helpers.storage import migrated_store

from phigate.config import DeliverySettings
from phigate.mta.delivery.client import SmtpTransport
from phigate.queue.db import make_engine, upgrade
from phigate.queue.store import SqlQueueStore
from phigate.queue.transport_store import TransportStore

MX_NAMES = ["mx1.example.test", "mx2.example.test", "mx.other.test", "relay.partner.test"]


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    """A server context whose certificate is valid for every test MX name."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*MX_NAMES).configure_cert(context)
    return context


@pytest.fixture(scope="session")
def wrong_name_tls(ca: trustme.CA) -> ssl.SSLContext:
    """Signed by the test CA, but for a name no test MX has."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("somewhere-else.test").configure_cert(context)
    return context


@pytest.fixture
def sink_factory() -> Iterator[Callable[..., SmtpSink]]:
    started: list[SmtpSink] = []

    def make(*, tls: ssl.SSLContext | None = None, port: int | None = None,
             address: str = "127.0.0.1", **kwargs: object) -> SmtpSink:
        sink = SmtpSink(port or free_port(), tls_context=tls, hostname=address,
                        **kwargs).start()  # type: ignore[arg-type]
        started.append(sink)
        return sink

    yield make
    for sink in started:
        sink.stop()
    # Issue 13 item 2: every DSN any delivery test made, scanned, carries no PHI.
    dsns = [m.content for sink in started for m in sink.messages if m.mail_from in ("", "<>")]
    if dsns:
        scanner = _dsn_scanner()
        for content in dsns:
            result = scanner.scan_message(content)
            assert result.verdict != "phi", result.categories


@functools.cache
def _dsn_scanner() -> Any:
    """The real scanner's recognizers (no NER model), built once per session."""
    from phigate.config import ScannerSettings
    from phigate.phi_scanner import Scanner

    return Scanner(ScannerSettings(ner="never"))


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    server = DnsServer(free_port(socket.SOCK_DGRAM)).start()
    yield server
    server.stop()


@pytest.fixture
def store(db_url: str, master_key_file: Path) -> Iterator[SqlQueueStore]:
    """A migrated, sealed queue store on ``db_url`` (SQLite, and PostgreSQL where there is one)."""
    with migrated_store(db_url, master_key_file) as store:
        yield store


@pytest.fixture
def transport_store(tmp_path: Path) -> Iterator[TransportStore]:
    engine = make_engine(f"sqlite:///{tmp_path / 'queue.db'}")
    upgrade(engine)
    yield TransportStore(engine)
    engine.dispose()


@pytest.fixture
def delivery_settings(dns: DnsServer, ca_file: Path) -> Callable[..., DeliverySettings]:
    """DeliverySettings pointed at the test DNS server and CA, with short timeouts."""

    def make(**overrides: object) -> DeliverySettings:
        values: dict[str, object] = {
            "dns_servers": [dns.address],
            "ca_file": str(ca_file),
            "connect_timeout_seconds": 5.0,
            "command_timeout_seconds": 5.0,
        }
        values.update(overrides)
        return DeliverySettings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def transport_for(
        delivery_settings: Callable[..., DeliverySettings],
) -> AsyncIterator[Callable[..., SmtpTransport]]:
    """``transport_for(**delivery overrides)``: an SMTP client on :func:`delivery_settings`,
    closed after the test."""
    made: list[SmtpTransport] = []

    def make(**overrides: object) -> SmtpTransport:
        transport = SmtpTransport(delivery_settings(**overrides), local_hostname="relay.test")
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.aclose()


class FakeClock:
    """An injectable clock: ``sleep`` moves time forward instead of waiting.

    Concurrent sleepers each move it to their own wake-up time (never backwards), which is
    enough for throttles: a limit that holds on this clock holds on a real one.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        wake = self._now + timedelta(seconds=max(0.0, seconds))
        await asyncio.sleep(0)  # sleepers that start together wake together
        self._now = max(self._now, wake)

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
