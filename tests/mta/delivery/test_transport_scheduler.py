"""The scheduler's side of issue 17: delay notices, PHI's shorter wait for a TLS route,
the TLS policy of each attempt in ``queue show``, and the daily TLS report delivered
DKIM-signed through our own queue (real sockets, a fake clock)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import ssl
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dkim
import pytest
import trustme
from helpers.dns_server import DnsServer
from helpers.net import free_port
from helpers.smtp_sink import SmtpSink
from sqlalchemy import select

from phigate.cli.main import main
from phigate.config import Settings
from phigate.mta.delivery.dkim import DkimSigner, dns_record, generate_key
from phigate.mta.delivery.routing import make_resolver
from phigate.mta.delivery.scheduler import DeliveryScheduler
from phigate.mta.delivery.tlsrpt import PolicyType, ReportContext, ResultType, TlsReporter
from phigate.observability.metrics import METRICS
from phigate.queue.models import Attempt, Recipient, RecipientState
from phigate.queue.store import NewMessage, SqlQueueStore
from phigate.queue.transport_store import TransportStore

SENDER = "clinic@practice.test"
BODY = (b"From: Clinic <clinic@practice.test>\r\nTo: pat@example.test\r\n"
        b"Subject: Your results\r\nMessage-ID: <m1@practice.test>\r\n\r\n"
        b"Your MRI results are ready. SECRET-BODY-MARKER\r\n")


class Clock:
    def __init__(self) -> None:
        self._now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)
        self._now += timedelta(seconds=max(0.0, seconds))

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    server = DnsServer(free_port(socket.SOCK_DGRAM), {
        "example.test": [("MX", "10 mx1.example.test.")],
        "practice.test": [("MX", "10 mx1.example.test.")],
        "mx1.example.test": [("A", "127.0.0.1")],
        "plain.test": [("MX", "10 mx.plain.test.")], "mx.plain.test": [("A", "127.0.0.2")],
    }).start()
    yield server
    server.stop()


class World:
    def __init__(self, dns: DnsServer, store: SqlQueueStore, ca: trustme.CA, tmp: Path,
                 make_settings: Callable[..., Settings]) -> None:
        self.dns, self.store, self.make_settings = dns, store, make_settings
        self.port = free_port()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("mx1.example.test").configure_cert(context)
        self.sink = SmtpSink(self.port, tls_context=context).start()
        self.plain = SmtpSink(self.port, hostname="127.0.0.2").start()  # no STARTTLS
        self.ca_file = tmp / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.clock = Clock()

    def settings(self, **delivery: Any) -> Settings:
        values = {"dns_servers": [self.dns.address], "ca_file": str(self.ca_file),
                  "mx_port": self.port, "connect_timeout_seconds": 5.0,
                  "command_timeout_seconds": 5.0, "poll_interval_seconds": 0.05,
                  "retry_base_seconds": 60, "retry_max_seconds": 300}
        values.update(delivery)
        return self.make_settings(delivery=values)

    def scheduler(self, **kwargs: Any) -> DeliveryScheduler:
        signer = kwargs.pop("signer", None)
        return DeliveryScheduler(self.settings(**kwargs), self.store, clock=self.clock,
                                 signer=signer)

    def enqueue(self, recipient: str, *, phi: bool = False) -> str:
        return self.store.enqueue(NewMessage(
            sender=SENDER, recipients=[recipient], body=BODY,
            phi_verdict="phi" if phi else "none"), now=self.clock.now())

    def dsns(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(m.content, policy=email.policy.default)
                for m in self.sink.messages if m.mail_from in ("", "<>")]

    def recipient(self, message_id: str) -> Recipient:
        with self.store.reading() as session:
            return session.scalars(select(Recipient).where(
                Recipient.message_id == message_id)).one()

    def stop(self) -> None:
        self.sink.stop()
        self.plain.stop()


@pytest.fixture
def world(dns: DnsServer, store: SqlQueueStore, ca: trustme.CA, tmp_path: Path,
          make_settings: Callable[..., Settings]) -> Iterator[World]:
    w = World(dns, store, ca, tmp_path, make_settings)
    yield w
    w.stop()


async def _run_for(world: World, scheduler: DeliveryScheduler, seconds: int,
                   step: int = 60) -> None:
    for _ in range(seconds // step):
        world.clock.advance(step)
        await scheduler.run_until_empty()


async def test_a_delayed_recipient_gets_exactly_one_delay_notice(world: World) -> None:
    world.sink.script_rcpt("pat@example.test", "450 4.2.0 mailbox busy, try later")
    message_id = world.enqueue("pat@example.test")
    scheduler = world.scheduler(delay_warning_seconds=600)
    await scheduler.run_until_empty()
    assert world.dsns() == []
    await _run_for(world, scheduler, 3600)
    notices = world.dsns()
    assert len(notices) == 1, [n["Subject"] for n in notices]
    notice = notices[0]
    assert notice["To"] == SENDER and notice["Subject"].startswith("Delayed Mail")
    raw = notice.as_bytes()
    assert b"Action: delayed" in raw and b"Final-Recipient: rfc822; pat@example.test" in raw
    assert b"SECRET-BODY-MARKER" not in raw and b"MRI results" not in raw  # headers only
    recipient = world.recipient(message_id)
    assert recipient.state is RecipientState.DEFERRED and recipient.delay_notified_at


async def test_phi_without_a_tls_route_bounces_after_the_short_wait(world: World) -> None:
    message_id = world.enqueue("pat@plain.test", phi=True)
    scheduler = world.scheduler(phi_tls_max_wait_seconds=1800, delay_warning_seconds=0)
    start = world.clock.now()
    await scheduler.run_until_empty()
    ended: datetime | None = None
    for _ in range(60):
        world.clock.advance(60)
        await scheduler.run_until_empty()
        if world.recipient(message_id).state is not RecipientState.DEFERRED:
            ended = world.clock.now()
            break
    assert ended is not None
    waited = (ended - start).total_seconds()
    assert 1800 <= waited <= 1800 + 300 + 60  # at the first attempt after the wait
    assert world.recipient(message_id).state is RecipientState.EXPIRED
    assert world.plain.messages == []  # never in clear
    [bounce] = world.dsns()
    raw = bounce.as_bytes().replace(b"\n ", b" ")
    assert b"Status: 5.7.10" in raw
    assert b"no mail server of plain.test offered an acceptable encrypted, verified" in raw
    assert b"protected health information" in raw  # the plain-words explanation
    assert b"SECRET-BODY-MARKER" not in raw


async def test_ordinary_mail_keeps_the_full_lifetime(world: World) -> None:
    world.sink.script_rcpt("pat@example.test", "450 4.2.0 busy")
    message_id = world.enqueue("pat@example.test")
    scheduler = world.scheduler(phi_tls_max_wait_seconds=600, delay_warning_seconds=0)
    await _run_for(world, scheduler, 1800)
    assert world.recipient(message_id).state is RecipientState.DEFERRED


async def test_attempts_record_their_tls_policy_and_queue_show_prints_it(
        world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def sessions(result: str) -> float:
        value = METRICS.registry.get_sample_value(
            "phigate_tls_sessions_total", {"policy": "verify", "result": result})
        return value or 0.0

    before = sessions("success")
    message_id = world.enqueue("pat@example.test", phi=True)
    scheduler = world.scheduler()
    await scheduler.run_until_empty()
    assert sessions("success") == before + 1  # deliveries by TLS policy and result
    with world.store.reading() as session:
        [attempt] = session.scalars(select(Attempt).where(Attempt.message_id == message_id))
        assert attempt.tls_policy == "verify" and attempt.cert_verified
    settings = world.settings()
    config = tmp_path / "phigate.toml"
    config.write_text(f'[storage]\nurl = "{settings.storage.url}"\n'
                      f'master_key_file = "{settings.storage.master_key_file}"\n'
                      '[admin]\noperators = ["root", "' + _me() + '"]\n')
    assert main(["--config", str(config), "queue", "show", message_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["attempts"][0]["tls_policy"] == "verify"
    assert main(["--config", str(config), "queue", "show", message_id]) == 0
    assert "policy verify" in capsys.readouterr().out


def _me() -> str:
    import getpass

    return getpass.getuser()


async def test_daily_tls_report_reaches_the_sink_dkim_signed(world: World) -> None:
    world.dns.set("_smtp._tls.example.test",
                  [("TXT", '"v=TLSRPTv1; rua=mailto:tls-reports@example.test"')])
    key = generate_key("rsa")
    signer = DkimSigner(domains=["practice.test"], selector="s1", rsa_key=key)
    scheduler = world.scheduler(signer=signer)
    counter = scheduler.security.counter
    assert counter is not None
    day = world.clock.now()
    counter.count(day, "example.test", PolicyType.STS, policy_id="1", mx="mx1.example.test")
    counter.count(day, "example.test", PolicyType.STS, policy_id="1",
                  result=ResultType.CERTIFICATE_EXPIRED, mx="mx1.example.test")
    reporter = TlsReporter(
        counter, TransportStore(world.store.engine), world.store,
        make_resolver([world.dns.address], timeout=3),
        ReportContext("Practice", "mailto:postmaster@practice.test", "relay.practice.test"),
        sender="TLS reports <tlsrpt-noreply@practice.test>")
    assert await reporter.run_once(day + timedelta(days=1)) == 1
    world.clock.advance(86400)
    await scheduler.run_until_empty()
    [report] = [m for m in world.sink.messages if "tls-reports@example.test" in m.rcpt_tos]
    assert report.tls_version is not None
    record = dns_record(key).encode()

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == b"s1._domainkey.practice.test." else None

    assert dkim.verify(report.content, dnsfunc=lookup)
    parsed = email.message_from_bytes(report.content, policy=email.policy.default)
    assert parsed.get_param("report-type") == "tlsrpt"
    assert parsed["From"] == "TLS reports <tlsrpt-noreply@practice.test>"


async def test_requiretls_message_goes_only_to_a_hop_offering_it(world: World,
                                                                 ca: trustme.CA) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mx.rt.test").configure_cert(context)
    offering = SmtpSink(world.port, tls_context=context, hostname="127.0.0.3",
                        requiretls=True).start()
    world.dns.set("rt.test", [("MX", "10 mx.rt.test.")])
    world.dns.set("mx.rt.test", [("A", "127.0.0.3")])
    try:
        refused = world.store.enqueue(NewMessage(
            sender=SENDER, recipients=["pat@example.test"], body=BODY, require_tls=True),
            now=world.clock.now())
        taken = world.store.enqueue(NewMessage(
            sender=SENDER, recipients=["pat@rt.test"], body=BODY, require_tls=True),
            now=world.clock.now())
        await world.scheduler().run_until_empty()
    finally:
        offering.stop()
    assert world.recipient(refused).state is RecipientState.BOUNCED
    assert "5.7.30 REQUIRETLS support required" in (world.recipient(refused).last_text or "")
    assert world.sink.delivered_to("pat@example.test") == []
    [received] = offering.delivered_to("pat@rt.test")
    assert "REQUIRETLS" in received.mail_options  # the flag is visible at the sink
    assert world.recipient(taken).state is RecipientState.DELIVERED
