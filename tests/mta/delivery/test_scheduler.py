"""The delivery scheduler end to end: queue (SQLite and PostgreSQL) → SMTP sink, fake clock."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.smtp_sink import SmtpSink, Stall
from helpers.wait import wait_until
from sqlalchemy import select

from phigate.config import Settings
from phigate.mta.delivery.outcomes import AttemptResult
from phigate.mta.delivery.scheduler import DeliveryScheduler
from phigate.queue.models import (
    Attempt,
    Message,
    MessageClass,
    MessageState,
    Recipient,
    RecipientState,
)
from phigate.queue.store import NewMessage, SqlQueueStore

from .conftest import FakeClock

SENDER = "clinic@practice.test"
BODY = (b"From: Clinic <clinic@practice.test>\r\nTo: pat@example.test\r\n"
        b"Subject: Your appointment\r\nMessage-ID: <m1@practice.test>\r\n"
        b"X-Phigate-Class: treatment\r\nX-Phigate-Campaign: none\r\n\r\n"
        b"Dear patient, your MRI results are ready. SECRET-BODY-MARKER\r\n")


@pytest.fixture
def world(dns, sink_factory, server_tls, ca_file, make_settings, store):
    """example.test and practice.test (the senders' own domain, for DSNs) on one sink."""
    sink = sink_factory(tls=server_tls)
    for domain in ("example.test", "practice.test"):
        dns.set(domain, [("MX", "10 mx1.example.test.")])
    dns.set("mx1.example.test", [("A", "127.0.0.1")])
    return _World(sink, store, make_settings, dns, ca_file)


class _World:
    def __init__(self, sink: SmtpSink, store: SqlQueueStore,
                 make_settings: Callable[..., Settings], dns: Any, ca_file: Path) -> None:
        self.sink, self.store, self.dns = sink, store, dns
        self._make_settings, self._ca_file = make_settings, ca_file
        self.clock = FakeClock()

    def settings(self, **delivery: Any) -> Settings:
        values = {"dns_servers": [self.dns.address], "ca_file": str(self._ca_file),
                  "mx_port": self.sink.port, "connect_timeout_seconds": 5.0,
                  "command_timeout_seconds": 5.0, "poll_interval_seconds": 0.05}
        values.update(delivery)
        return self._make_settings(delivery=values)

    def scheduler(self, **delivery: Any) -> DeliveryScheduler:
        return DeliveryScheduler(self.settings(**delivery), self.store, clock=self.clock)

    def enqueue(self, *recipients: str, phi: bool = False, sender: str = SENDER,
                body: bytes = BODY) -> str:
        return self.store.enqueue(NewMessage(
            sender=sender, recipients=recipients or ("pat@example.test",), body=body,
            phi_verdict="phi" if phi else "none"), now=self.clock.now())

    def recipients(self, message_id: str) -> list[Recipient]:
        with self.store.writing() as session:
            return list(session.scalars(select(Recipient).where(
                Recipient.message_id == message_id).order_by(Recipient.id)))

    def attempts(self, message_id: str) -> list[Attempt]:
        with self.store.writing() as session:
            return list(session.scalars(select(Attempt).where(
                Attempt.message_id == message_id).order_by(Attempt.id)))

    def dsns(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(m.content, policy=email.policy.default)
                for m in self.sink.messages if m.mail_from in ("", "<>")]


async def test_delivers_over_verified_starttls_and_records_tls(world) -> None:
    message_id = world.enqueue("pat@example.test", "kim@example.test", phi=True)

    await world.scheduler().run_until_empty()

    [received] = world.sink.messages
    assert received.rcpt_tos == ("pat@example.test", "kim@example.test")  # one transaction
    assert received.tls_version in ("TLSv1.2", "TLSv1.3")
    assert b"X-Phigate" not in received.content  # internal headers removed
    assert b"SECRET-BODY-MARKER" in received.content
    assert [r.state for r in world.recipients(message_id)] == [RecipientState.DELIVERED] * 2
    for attempt in world.attempts(message_id):
        assert attempt.code == 250
        assert attempt.tls_version == received.tls_version and attempt.tls_cipher
        assert attempt.cert_verified is True
    assert world.store.get_message(message_id).state is MessageState.DONE


async def test_phi_waits_for_tls_and_bounces_at_expiry_without_body(
        world, sink_factory) -> None:
    # example.test's MX offers no STARTTLS.
    plain = sink_factory(tls=None, port=world.sink.port, address="127.0.0.2")
    world.dns.set("example.test", [("MX", "10 mx2.example.test.")])
    world.dns.set("mx2.example.test", [("A", "127.0.0.2")])
    message_id = world.enqueue(phi=True)
    scheduler = world.scheduler()

    await scheduler.run_until_empty()

    [recipient] = world.recipients(message_id)
    assert recipient.state is RecipientState.DEFERRED
    assert recipient.last_text.endswith(
        "TLS required for PHI: mx2.example.test offers no STARTTLS")
    assert plain.messages == []

    # Retried on schedule until PHI's wait for TLS ([delivery] phi_tls_max_wait_seconds,
    # a day by default) runs out, never in clear.
    for _ in range(200):
        world.clock.advance(3600)
        await scheduler.run_until_empty()
        [recipient] = world.recipients(message_id)
        if recipient.state is not RecipientState.DEFERRED:
            break
    assert recipient.state is RecipientState.EXPIRED
    assert plain.messages == []
    assert len(world.attempts(message_id)) > 5

    # To the sender, over the verified path of practice.test: one delay notice, then this.
    delayed, dsn = world.dsns()
    assert delayed["Subject"].startswith("Delayed Mail")
    assert dsn["To"] == SENDER and dsn.get_content_type() == "multipart/report"
    raw = dsn.as_bytes()
    assert b"SECRET-BODY-MARKER" not in raw and b"MRI results" not in raw
    unfolded = raw.replace(b"\n ", b" ")  # the long Diagnostic-Code is folded here
    assert b"TLS required for PHI: mx2.example.test offers no STARTTLS" in unfolded
    assert b"within 24 hours; the message was not sent unencrypted" in unfolded
    assert b"Status: 5.7.10" in raw


async def test_temporary_failures_are_retried_on_schedule(world) -> None:
    world.sink.script("RCPT", "450 4.2.0 mailbox busy", times=2)
    message_id = world.enqueue()
    scheduler = world.scheduler(retry_base_seconds=60)
    start = world.clock.now()

    await scheduler.run_until_empty()
    [recipient] = world.recipients(message_id)
    first_retry = recipient.next_attempt_at - start
    assert recipient.state is RecipientState.DEFERRED and recipient.attempts == 1
    assert timedelta(seconds=54) <= first_retry <= timedelta(seconds=66)  # 60 s ± jitter

    world.clock.advance(30)  # not due yet: nothing happens
    await scheduler.run_until_empty()
    assert world.recipients(message_id)[0].attempts == 1

    world.clock.advance(40)
    await scheduler.run_until_empty()
    [recipient] = world.recipients(message_id)
    second_retry = recipient.next_attempt_at - world.clock.now()
    assert recipient.attempts == 2
    assert timedelta(seconds=108) <= second_retry <= timedelta(seconds=132)  # doubled

    world.clock.advance(135)
    await scheduler.run_until_empty()
    [recipient] = world.recipients(message_id)
    assert recipient.state is RecipientState.DELIVERED and recipient.attempts == 3
    assert len(world.sink.messages) == 1 and world.dsns() == []


async def test_permanent_failure_bounces_once_and_a_bounce_is_never_bounced(
        world) -> None:
    world.sink.script_rcpt("gone@example.test", "550 5.1.1 no such user")
    # The sender's own mailbox refuses the DSN too.
    world.sink.script_rcpt(SENDER, "550 5.1.1 sender mailbox gone")
    message_id = world.enqueue("gone@example.test", "pat@example.test")

    await world.scheduler().run_until_empty()

    gone, pat = world.recipients(message_id)
    assert gone.state is RecipientState.BOUNCED and gone.last_code == 550
    assert pat.state is RecipientState.DELIVERED
    messages = world.store.count_messages()
    # The original and exactly one DSN; the DSN's own failure produced nothing more.
    assert sum(messages.values()) == 2
    dsn_rcpt = [c for c in world.sink.commands if c == ("RCPT", SENDER)]
    assert len(dsn_rcpt) == 1


async def test_dsn_names_the_remote_reply(world) -> None:
    world.sink.script_rcpt("gone@example.test", "550 5.1.1 no such user")
    world.enqueue("gone@example.test")
    await world.scheduler().run_until_empty()
    [dsn] = world.dsns()
    raw = dsn.as_bytes()
    assert b"Final-Recipient: rfc822; gone@example.test" in raw
    assert b"Diagnostic-Code: smtp; 550 5.1.1 no such user" in raw
    assert b"Remote-MTA: dns; mx1.example.test" in raw
    assert b"SECRET-BODY-MARKER" not in raw


class _ExplodingTransport:
    calls = 0

    async def deliver(self, message: Any) -> AttemptResult:
        self.calls += 1
        raise RuntimeError("bug in our code")

    async def aclose(self) -> None:
        pass


async def test_a_message_that_keeps_crashing_is_parked_as_corrupt(world) -> None:
    message_id = world.enqueue()
    transport = _ExplodingTransport()
    scheduler = DeliveryScheduler(world.settings(), world.store, clock=world.clock,
                                  transport=transport)

    await scheduler.run_until_empty()

    # Three for the message; then three for the 5.3.0 DSN that parking it queued (the
    # transport explodes on every message), which is parked too and reports nothing.
    assert transport.calls == 6
    view = world.store.get_message(message_id)
    assert view.state is MessageState.CORRUPT
    assert view.recipients[0].state is RecipientState.QUEUED  # parked, not lost
    with world.store.reading() as session:
        reports = session.scalars(select(Message).where(Message.sender == "")).all()
    assert [(m.state, m.message_class) for m in reports] == [
        (MessageState.CORRUPT, "operations")]


async def test_rate_and_concurrency_limits_hold(world) -> None:
    for index in range(12):
        world.enqueue(f"p{index}@example.test")
    world.sink.script("DATA", Stall(0.05), times=None)  # make deliveries overlap
    scheduler = world.scheduler(rate_per_minute_per_domain=60, max_connections_per_domain=3)

    await scheduler.run_until_empty()

    assert len(world.sink.messages) == 12
    assert world.sink.max_concurrent <= 3
    with world.store.writing() as session:
        starts = sorted(session.scalars(select(Attempt.started_at)))
    # 60/min with a burst of 1: over any window of t seconds at most 1 + t messages.
    for i, first in enumerate(starts):
        for j in range(i, len(starts)):
            window = (starts[j] - first).total_seconds()
            assert j - i + 1 <= 1 + window + 1e-6
    assert (starts[-1] - starts[0]).total_seconds() >= 11 - 1e-6


async def test_concurrency_is_used_up_to_the_limit(world) -> None:
    for index in range(8):
        world.enqueue(f"p{index}@example.test")
    world.sink.script("DATA", Stall(0.2), times=None)
    scheduler = world.scheduler(max_connections_per_domain=2)
    await scheduler.run_until_empty()
    assert len(world.sink.messages) == 8
    assert world.sink.max_concurrent == 2


async def test_mail_queued_behind_a_slow_delivery_gets_its_own_connection(world) -> None:
    """A job queued while every worker of its domain was busy waited for one of them to
    finish (30 s behind a stalling MX), though the connection limit allowed more."""
    world.sink.script("DATA", Stall(8.0))  # the first message only
    world.enqueue("slow@example.test")
    scheduler = DeliveryScheduler(world.settings(shutdown_timeout_seconds=0.5), world.store)
    stop = asyncio.Event()
    runner = asyncio.create_task(scheduler.run(stop))
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            if ("DATA", "") in world.sink.commands:
                break
        assert ("DATA", "") in world.sink.commands
        world.enqueue("next@example.test")
        for _ in range(60):
            await asyncio.sleep(0.05)
            if world.sink.messages:
                break
        assert [m.rcpt_tos for m in world.sink.messages] == [("next@example.test",)]
    finally:
        stop.set()
        await asyncio.wait_for(runner, 10)


async def test_a_421_slows_that_destination_down(world) -> None:
    messages = [world.enqueue(f"p{i}@example.test") for i in range(6)]
    world.sink.script("EHLO", "421 4.7.0 too many messages, slow down", times=None)
    scheduler = world.scheduler(rate_limit_pause_seconds=60, rate_limit_slow_seconds=600,
                                max_connections_per_domain=3, rate_per_minute_per_domain=600)
    start = world.clock.now()

    await scheduler.run_until_empty()

    # Nothing went out; the jobs that were not tried wait for the end of the pause.
    assert world.sink.messages == []
    recipients = [world.recipients(m)[0] for m in messages]
    tried = [r for r in recipients if r.attempts]
    untried = [r for r in recipients if not r.attempts]
    assert 1 <= len(tried) <= 3 and all(r.last_code == 421 for r in tried)
    assert untried and all(r.next_attempt_at >= start + timedelta(seconds=60)
                           and r.state is RecipientState.DEFERRED for r in untried)
    assert world.sink.sessions == len(tried)  # no hammering: one connection per worker

    # After the pause, the destination gets one connection at a quarter of its rate.
    world.sink.clear_scripts()
    world.sink.reset_counters()
    world.sink.script("DATA", Stall(0.05), times=None)
    world.clock.advance(70)  # past the pause and every retry time; still in the slow period
    assert scheduler.throttles.slowed("example.test", world.clock.now().timestamp())
    await scheduler.run_until_empty()

    assert len(world.sink.messages) == 6
    assert world.sink.max_concurrent == 1
    with world.store.writing() as session:
        starts = sorted(session.scalars(select(Attempt.started_at).where(
            Attempt.code == 250)))
    # 150/min (2.5/s, a burst of 2.5) instead of 600/min (10/s, a burst of 10, which
    # would have sent all six at once).
    for i, first in enumerate(starts):
        for j in range(i, len(starts)):
            assert j - i + 1 <= 2.5 + 2.5 * (starts[j] - first).total_seconds() + 1e-6
    assert (starts[-1] - starts[0]).total_seconds() >= 1.4 - 1e-6


async def test_graceful_stop_releases_leases(world) -> None:
    world.sink.script("DATA", Stall(3.0))
    message_id = world.enqueue()
    scheduler = DeliveryScheduler(world.settings(shutdown_timeout_seconds=0.2), world.store)
    stop = asyncio.Event()
    runner = asyncio.create_task(scheduler.run(stop))
    for _ in range(100):
        await asyncio.sleep(0.05)
        if ("DATA", "") in world.sink.commands:
            break
    stop.set()
    await asyncio.wait_for(runner, 5)

    [recipient] = world.recipients(message_id)
    assert recipient.lease_owner is None and recipient.lease_until is None
    assert recipient.state is RecipientState.QUEUED  # will be delivered by the next run
    assert world.sink.messages == []


async def test_stop_cancelled_while_draining_still_releases_leases(
        world) -> None:
    """Whoever stops delivery gives up waiting (cancels it) while a delivery hangs: the
    lease release is shielded, so it still runs before the cancellation goes through."""
    world.sink.script("DATA", Stall(30.0))
    message_id = world.enqueue()
    scheduler = DeliveryScheduler(world.settings(shutdown_timeout_seconds=10), world.store)
    stop = asyncio.Event()
    runner = asyncio.create_task(scheduler.run(stop))
    await wait_until(lambda: ("DATA", "") in world.sink.commands, what="DATA sent")
    stop.set()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(runner, 0.5)  # long before shutdown_timeout_seconds

    [recipient] = world.recipients(message_id)
    assert recipient.lease_owner is None and recipient.lease_until is None
    assert world.sink.messages == []


async def test_jobs_stale_behind_a_throttle_cost_no_rate(world) -> None:
    """More claimed than the rate lets out within the lease: the stale ones are dropped
    (claimed again later) without eating tokens, so the rate is still used in full."""
    for index in range(30):
        world.enqueue(f"p{index}@example.test")
    scheduler = world.scheduler(rate_per_minute_per_domain=60, lease_seconds=10,
                                claim_batch_size=30)
    start = world.clock.now()

    await scheduler.run_until_empty()

    assert len(world.sink.messages) == 30  # each exactly once
    assert len({m.rcpt_tos for m in world.sink.messages}) == 30
    assert (world.clock.now() - start).total_seconds() <= 40  # 1/s, plus lease churn


async def test_delivered_mail_is_dkim_signed_without_internal_headers(world) -> None:
    import dkim

    from phigate.mta.delivery.dkim import DkimSigner, dns_record, generate_key

    key = generate_key("rsa")
    signer = DkimSigner(domains=["practice.test"], selector="s1", rsa_key=key)
    world.enqueue()
    scheduler = DeliveryScheduler(world.settings(), world.store, clock=world.clock,
                                  signer=signer)

    await scheduler.run_until_empty()

    [received] = world.sink.messages
    assert received.content.startswith(b"DKIM-Signature:")
    assert b"X-Phigate" not in received.content
    record = dns_record(key, "rsa").encode()

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s1._domainkey.practice.test."
        return record

    assert dkim.verify(received.content, dnsfunc=dnsfunc)


async def test_marketing_gets_verp_and_signed_one_click_unsubscribe_per_recipient(
        world, tmp_path: Path) -> None:
    import dkim

    from phigate.mta.delivery.dkim import DkimSigner, dns_record, generate_key
    from phigate.policy.token_registry import SqlTokenRegistry
    from phigate.policy.tokens import TokenSigner, token_in_address

    token_key = tmp_path / "token.key"
    token_key.write_bytes(b"k" * 32)
    key = generate_key("rsa")
    settings = world._make_settings(
        delivery={"dns_servers": [world.dns.address], "ca_file": str(world._ca_file),
                  "mx_port": world.sink.port, "poll_interval_seconds": 0.05},
        policy={"token_key_file": str(token_key)},
        http={"public_url": "https://relay.practice.test"},
    )
    message_id = world.store.enqueue(NewMessage(
        sender=SENDER, recipients=("pat@example.test", "kim@example.test"),
        body=BODY.replace(b"X-Phigate-Class: treatment", b"X-Phigate-Class: marketing"),
        message_class=MessageClass.MARKETING, campaign_id="spring"), now=world.clock.now())
    scheduler = DeliveryScheduler(
        settings, world.store, clock=world.clock,
        signer=DkimSigner(domains=["practice.test"], selector="s1", rsa_key=key))

    await scheduler.run_until_empty()

    received = sorted(world.sink.messages, key=lambda m: m.rcpt_tos)
    assert [m.rcpt_tos for m in received] == [("kim@example.test",), ("pat@example.test",)]
    tokens = TokenSigner(b"k" * 32, SqlTokenRegistry(world.store.engine))
    record = dns_record(key, "rsa").encode()
    for message in received:
        (recipient,) = message.rcpt_tos
        kind, token = token_in_address(message.mail_from) or ("", "")
        claims = tokens.parse(token)
        assert kind == "verp" and claims is not None
        # Opaque (issue 13 finding 4): the address is not readable in the return path.
        assert recipient.split("@")[0] not in message.mail_from.lower()
        assert len(message.mail_from.split("@")[0]) <= 64
        assert claims.recipient == recipient and claims.campaign == "spring"
        assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in message.content
        assert b"<https://relay.practice.test/u/" in message.content
        signature = message.content.split(b"\r\n\r\n")[0]
        assert b"list-unsubscribe" in signature.lower().split(b"h=")[1]
        assert dkim.verify(message.content, dnsfunc=lambda name, timeout=5: record)
        # The visible footer (issue 19) is in the signed body, with the header's token.
        body = email.message_from_bytes(message.content, policy=email.policy.default)
        footer = body.get_content()
        one_click = message.content.split(b"<https://relay.practice.test/u/")[1].split(b">")[0]
        assert f"https://relay.practice.test/u/{one_click.decode()}" in footer
        assert settings.policy.postal_address in footer
    assert world.store.get_message(message_id).state is MessageState.DONE


async def test_a_remote_reply_quoting_phi_is_kept_only_as_its_codes(world) -> None:
    """Issue 13 finding 8: remote reply text, which can quote PHI, was stored in clear (and
    shown by ``queue show``). Now the queue keeps a remote reply as its code and enhanced
    status only; the DSN got what it needed from the live reply."""
    quoted = "Lab results for Jane Roe SSN 123-45-6789"
    world.sink.script_rcpt("a@example.test", f"550 5.7.1 <a@example.test> refused: '{quoted}'")
    world.sink.script_rcpt("b@example.test", "451 4.2.0 mailbox of Jane Roe is being moved")
    message_id = world.enqueue("a@example.test", "b@example.test", phi=True)
    await world.scheduler().run_until_empty()

    bounced, deferred = world.recipients(message_id)
    assert (bounced.state, bounced.last_code, bounced.last_text) == (
        RecipientState.BOUNCED, 550, "5.7.1")
    assert (deferred.state, deferred.last_code, deferred.last_text) == (
        RecipientState.DEFERRED, 451, "4.2.0")
    assert sorted((a.code, a.text) for a in world.attempts(message_id)) == [
        (451, "4.2.0"), (550, "5.7.1")]
    assert [r.last_text for r in world.store.get_message(message_id).recipients] == [
        "5.7.1", "4.2.0"]
    [dsn] = world.dsns()
    assert "Diagnostic-Code: smtp; 550 5.7.1" in dsn.as_string()
    database = world.store.engine.url.database
    if world.store.engine.url.get_backend_name() == "sqlite" and database:
        for path in (Path(database), Path(f"{database}-wal")):
            if path.exists():
                raw = path.read_bytes()
                assert b"Jane Roe" not in raw and b"123-45-6789" not in raw, path.name


async def test_new_mail_signals_are_gathered_into_one_claim(world, monkeypatch) -> None:
    """``new_mail`` (the queue's signal, issue 16) claims at once instead of at the next
    poll, and the signals of mail queued in one moment share that claim."""
    claimed: list[int] = []
    claim_due = world.store.claim_due

    def counting_claim(*args: Any, **kwargs: Any) -> Any:
        found = claim_due(*args, **kwargs)
        claimed.append(len(found))
        return found

    monkeypatch.setattr(world.store, "claim_due", counting_claim)
    scheduler = world.scheduler(poll_interval_seconds=3600)
    stop = asyncio.Event()
    runner = asyncio.create_task(scheduler.run(stop))
    try:
        await wait_until(lambda: claimed == [0], what="the first claim, at start")
        await asyncio.sleep(0.2)  # idle now, until the next poll an hour away
        for index in range(5):
            world.enqueue(f"pat{index}@example.test")
        for _ in range(5):
            scheduler.new_mail()
        await wait_until(lambda: len(world.sink.messages) == 5, what="all five delivered")
    finally:
        stop.set()
        await asyncio.wait_for(runner, 10)
    assert [count for count in claimed if count] == [5]
