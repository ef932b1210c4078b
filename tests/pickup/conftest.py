"""Secure pickup worlds: a sink without STARTTLS for the patient's provider, the practice's
own domain on the same sink, the queue, the scheduler (DKIM on) and the page over HTTPS."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import re
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from helpers.net import free_port
from helpers.smtp_sink import SmtpSink
from mta.delivery import conftest as delivery_fixtures
from mta.delivery.conftest import FakeClock

from phigate.config import Settings
from phigate.mta.delivery.dkim import DkimSigner, generate_key
from phigate.mta.delivery.scheduler import DeliveryScheduler
from phigate.pickup.web import PickupPages
from phigate.queue.crypto import MasterKey
from phigate.queue.db import make_engine, upgrade
from phigate.queue.models import MessageClass
from phigate.queue.store import NewMessage, SqlQueueStore

PRACTICE = "clinic@practice.test"
PATIENT = "pat@example.test"
OTHER = "sam@example.test"
PHI_SUBJECT = "Biopsy result for Jane Q Testpatient"
PHI_BODY = "Jane Q Testpatient, MRN 4417-2231: the biopsy shows stage II carcinoma."
PHI_FILE = "Testpatient-biopsy-4417.pdf"
PHI_STRINGS = ("Testpatient", "4417", "biopsy", "Biopsy", "carcinoma")
# The delivery tests' fixtures (test CA, DNS server, sinks), shared here.
ca = delivery_fixtures.ca
ca_file = delivery_fixtures.ca_file
dns = delivery_fixtures.dns
sink_factory = delivery_fixtures.sink_factory
server_tls = delivery_fixtures.server_tls
wrong_name_tls = delivery_fixtures.wrong_name_tls

LINK = re.compile(r"https://[^\s\"<>]+/p/[a-z2-7]{42}")


def phi_message(*, to: str = PATIENT, html: str | None = None, verify: str | None = None,
                attachment: bool = True) -> bytes:
    message = EmailMessage()
    message["From"] = f"Riverside Clinic <{PRACTICE}>"
    message["To"] = to
    message["Subject"] = PHI_SUBJECT
    message["Message-ID"] = "<phi-1@practice.test>"
    message["X-Phigate-Class"] = "treatment"
    if verify:
        message["X-Phigate-Pickup-Verify"] = verify
    message.set_content(PHI_BODY + "\n")
    message.add_alternative(html or f"<p><b>{PHI_BODY}</b></p>", subtype="html")
    if attachment:
        message.add_attachment(b"%PDF-1.4 fake biopsy 4417\n", maintype="application",
                               subtype="pdf", filename=PHI_FILE)
    return message.as_bytes(policy=email.policy.SMTP)


class PickupWorld:
    def __init__(self, sink: SmtpSink, practice_sink: SmtpSink, store: SqlQueueStore,
                 settings: Settings, signer: DkimSigner, dkim_key: bytes) -> None:
        self.sink, self.store, self.settings = sink, store, settings
        self.practice_sink = practice_sink
        self.signer, self.dkim_key = signer, dkim_key
        self.clock = FakeClock()
        self.base_url = ""
        self.pages: PickupPages | None = None

    def scheduler(self) -> DeliveryScheduler:
        return DeliveryScheduler(self.settings, self.store, clock=self.clock, signer=self.signer)

    async def deliver(self) -> None:
        await self.scheduler().run_until_empty()

    def enqueue_phi(self, body: bytes | None = None, *, to: str = PATIENT,
                    message_class: MessageClass = MessageClass.TREATMENT) -> str:
        return self.store.enqueue(NewMessage(
            sender=PRACTICE, recipients=[to], body=body or phi_message(to=to),
            phi_verdict="phi", message_class=message_class), now=self.clock.now())

    def received(self, kind: str, to: str = PATIENT) -> list[EmailMessage]:
        found = []
        for item in [*self.sink.messages, *self.practice_sink.messages]:
            parsed = email.message_from_bytes(item.content, policy=email.policy.default)
            if to in item.rcpt_tos and kind in str(parsed.get("Subject", "")):
                found.append(parsed)
        return found

    def raw(self, kind: str, to: str = PATIENT) -> list[bytes]:
        return [item.content for item in self.sink.messages if to in item.rcpt_tos
                and kind.encode() in item.content.split(b"\r\n\r\n", 1)[0]]

    def link(self, to: str = PATIENT) -> str:
        [notice] = self.received("is waiting", to)
        text = notice.get_body(("plain",))
        assert text is not None
        match = LINK.search(text.get_content())
        assert match, "no pickup link in the notice"
        return match.group(0)

    def code(self, to: str = PATIENT) -> str:
        mails = self.received("Your code", to)
        assert mails, "no code mail"
        found = re.search(r"\b(\d{6})\b", mails[-1].get_content())
        assert found
        return found.group(1)


def spki_hash(cert_pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem)
    der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture
def pickup_world(dns: Any, sink_factory: Callable[..., SmtpSink], ca_file: Path,
                 server_tls: ssl.SSLContext,
                 make_settings: Callable[..., Settings], db_url: str,
                 master_key_file: Path) -> Iterator[PickupWorld]:
    sink = sink_factory(tls=None)  # the patient's provider offers no STARTTLS
    # The practice's own mail server: verified STARTTLS, same port on another loopback IP.
    practice_sink = sink_factory(tls=server_tls, port=sink.port, address="127.0.0.2")
    dns.set("example.test", [("MX", "10 mx1.example.test.")])
    dns.set("mx1.example.test", [("A", "127.0.0.1")])
    dns.set("practice.test", [("MX", "10 mx.other.test.")])
    dns.set("mx.other.test", [("A", "127.0.0.2")])
    settings = make_settings(
        delivery={"dns_servers": [dns.address], "ca_file": str(ca_file), "mx_port": sink.port,
                  "connect_timeout_seconds": 5.0, "command_timeout_seconds": 5.0,
                  "poll_interval_seconds": 0.05, "mta_sts": False},
        pickup={"public_url": "https://127.0.0.1:1", "after_seconds": 3600,
                "practice_name": "Riverside Clinic",
                "classes": ["treatment", "operations"]})
    engine = make_engine(db_url)
    upgrade(engine)
    store = SqlQueueStore(engine, MasterKey.load(master_key_file))
    key = generate_key("rsa")
    signer = DkimSigner(domains=["practice.test"], selector="s1", rsa_key=key)
    yield PickupWorld(sink, practice_sink, store, settings, signer, key)
    engine.dispose()


@pytest.fixture(scope="session")
def https_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def https_cert(https_ca: trustme.CA) -> trustme.LeafCert:
    return https_ca.issue_cert("127.0.0.1", "localhost")


class ThreadScanner:
    """The real scanner (no NER, for speed) in a thread: what the relay's pool does."""

    def __init__(self) -> None:
        from phigate.config import ScannerSettings
        from phigate.phi_scanner.scanner import Scanner

        self.scanner = Scanner(ScannerSettings(ner="never"))
        self.scanned: list[bytes] = []

    async def scan(self, raw: bytes) -> Any:
        import asyncio

        self.scanned.append(raw)
        return await asyncio.to_thread(self.scanner.scan_message, raw)


@pytest.fixture(scope="session")
def thread_scanner() -> ThreadScanner:
    return ThreadScanner()


@pytest.fixture
async def pickup_site(pickup_world: PickupWorld, https_cert: trustme.LeafCert,
                      thread_scanner: ThreadScanner) -> AsyncIterator[PickupWorld]:
    """The pickup page on real HTTPS (127.0.0.1, a trustme certificate)."""
    import dataclasses

    port = free_port()
    world = pickup_world
    world.settings = dataclasses.replace(world.settings, pickup=dataclasses.replace(
        world.settings.pickup, public_url=f"https://127.0.0.1:{port}"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    https_cert.configure_cert(context)
    app = web.Application()
    world.pages = PickupPages(world.settings, world.store, scanner=thread_scanner,
                               clock=world.clock)
    world.pages.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    world.base_url = f"https://127.0.0.1:{port}"
    try:
        yield world
    finally:
        await runner.cleanup()


@pytest.fixture
def sqlite_only(db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("wiring only: the store is covered on PostgreSQL elsewhere")
