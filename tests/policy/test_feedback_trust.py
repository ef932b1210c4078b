"""Feedback you can trust (issue 13 item 1): forged reports sent to the real feedback
listener change nothing; reports tied to mail we sent still work, once."""

from __future__ import annotations

import asyncio

import aiosmtplib
import pytest
from helpers.dns_server import DnsServer
from sqlalchemy import select

from phigate.mta.delivery.dkim import DkimSigner, dns_record, generate_key
from phigate.observability.metrics import METRICS
from phigate.policy.tokens import TokenSigner, unsubscribe_headers
from phigate.queue.models import Recipient, RecipientState
from phigate.queue.policy_models import FeedbackEvent, SoftBounceCount
from phigate.queue.store import NewMessage
from policy.support import ADMIN, PolicyRelay
from policy.test_feedback_listener import BOUNCE_DOMAIN, arf, deliver, verp

POSTMASTER = "postmaster@" + BOUNCE_DOMAIN


def dsn(recipients: list[str], status: str = "5.1.1", *, action: str = "failed",
        report_id: str | None = None, returned_id: str | None = None) -> bytes:
    blocks = "".join(
        f"Final-Recipient: rfc822; {address}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} "
        f"{'user unknown' if status == '5.1.1' else 'mailbox full'}\r\n\r\n"
        for address in recipients)
    returned = (f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {returned_id}\r\n"
                "From: dr@practice.test\r\nSubject: Appointment\r\n\r\n") if returned_id else ""
    return (
        "From: MAILER-DAEMON@mx.example.org\r\nTo: bounces@practice.test\r\n"
        + (f"Message-ID: {report_id}\r\n" if report_id else "")
        + "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org"
        f"\r\n\r\n{blocks}{returned}--B--\r\n").encode()


def events(relay: PolicyRelay) -> list[FeedbackEvent]:
    with relay.runtime.store.reading() as session:
        return list(session.scalars(select(FeedbackEvent).order_by(FeedbackEvent.id)))


def ignored(kind: str, reason: str) -> float:
    return METRICS.feedback_ignored.labels(kind=kind, reason=reason)._value.get()


async def test_forged_dsn_for_an_address_never_mailed_suppresses_nothing(
        policy_relay: PolicyRelay) -> None:
    before = ignored("bounce", "unverified")
    code, _ = await deliver(policy_relay, POSTMASTER, dsn(["victim@example.org"]))
    assert code == 250
    assert policy_relay.stores.suppressions.entries() == []
    [event] = events(policy_relay)
    assert (event.kind, event.trust, event.suppressed) == ("bounce", "unverified", 0)
    assert ignored("bounce", "unverified") == before + 1


async def test_forged_plain_text_failure_suppresses_nothing(policy_relay: PolicyRelay) -> None:
    text = (b"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
            b"Subject: Mail delivery failed: returning message to sender\r\n\r\n"
            b"This message was created automatically by mail delivery software.\r\n\r\n"
            b"A message that you sent could not be delivered to one or more of its\r\n"
            b"recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
            b"  victim@example.org\r\n    unknown user\r\n")
    assert (await deliver(policy_relay, POSTMASTER, text))[0] == 250
    assert policy_relay.stores.suppressions.entries() == []


async def test_delayed_warnings_count_for_nothing(policy_relay: PolicyRelay,
                                                  signer: TokenSigner) -> None:
    address = verp(policy_relay, signer, "slow@example.org")
    for _ in range(5):
        code, _ = await deliver(policy_relay, address,
                                dsn(["slow@example.org"], "4.2.2", action="delayed"))
        assert code == 250
    assert policy_relay.stores.suppressions.entries() == []
    with policy_relay.runtime.store.reading() as session:
        assert session.get(SoftBounceCount, "slow@example.org") is None


@pytest.mark.slow
async def test_large_forged_multi_address_bounce_changes_one_recipient_at_most(
        policy_relay: PolicyRelay, signer: TokenSigner) -> None:
    victims = [f"patient{i:05d}@example.org" for i in range(13107)]
    report = dsn(["mine@example.org", *victims])
    assert len(report) > 1_250_000
    assert (await deliver(policy_relay, POSTMASTER, report))[0] == 250
    assert policy_relay.stores.suppressions.entries() == []
    # To the VERP address of one recipient, it may change that recipient and nobody else.
    address = verp(policy_relay, signer, "mine@example.org")
    assert (await deliver(policy_relay, address, report))[0] == 250
    [entry] = policy_relay.stores.suppressions.entries()
    assert (entry.address, entry.scope) == ("mine@example.org", "all")
    assert all(len(event.recipients) <= 20 for event in events(policy_relay))


async def test_dsn_tied_by_message_id_to_mail_we_sent(policy_relay: PolicyRelay) -> None:
    store = policy_relay.runtime.store
    queued = store.enqueue(NewMessage(
        sender="dr@practice.test", recipients=["pat@example.org", "lee@example.org"],
        body=b"Message-ID: <Visit-17@practice.test>\r\nSubject: x\r\n\r\nhi\r\n"))
    with store.writing() as session:
        for recipient in session.scalars(select(Recipient).where(
                Recipient.message_id == queued)):
            recipient.state = RecipientState.DELIVERED
    report = dsn(["pat@example.org", "victim@example.org"],
                 returned_id="<visit-17@practice.test>", report_id="<r1@mx.example.org>")
    assert (await deliver(policy_relay, POSTMASTER, report))[0] == 250
    [entry] = policy_relay.stores.suppressions.entries()
    assert entry.address == "pat@example.org"  # lee was not named, victim never mailed
    assert events(policy_relay)[-1].trust == "sent"
    # The same report again (same Message-ID), and a new one about the same recipient:
    # counted once.
    assert (await deliver(policy_relay, POSTMASTER, report))[0] == 250
    again = dsn(["pat@example.org"], returned_id="<visit-17@practice.test>",
                report_id="<r2@mx.example.org>")
    assert (await deliver(policy_relay, POSTMASTER, again))[0] == 250
    assert [e.trust for e in events(policy_relay)] == ["sent", "duplicate", "duplicate"]


async def test_soft_bounce_report_replayed_counts_once(policy_relay: PolicyRelay,
                                                       signer: TokenSigner) -> None:
    address = verp(policy_relay, signer, "full@example.org")
    report = dsn(["full@example.org"], "5.2.2", report_id="<same@mx.example.org>")
    for _ in range(4):
        assert (await deliver(policy_relay, address, report))[0] == 250
    with policy_relay.runtime.store.reading() as session:
        row = session.get(SoftBounceCount, "full@example.org")
        assert row is not None and row.count == 1


def _complaint_headers(signer: TokenSigner, recipient: str) -> str:
    return "\r\n".join(f"{name}: {value}" for name, value in unsubscribe_headers(
        signer, recipient, "spring", "https://relay.practice.test", BOUNCE_DOMAIN
    ).items()) + f"\r\nFrom: news@practice.test\r\nTo: {recipient}\r\nSubject: Spring\r\n"


async def test_unsigned_complaint_without_our_token_changes_nothing(
        policy_relay: PolicyRelay) -> None:
    report = arf("From: news@practice.test\r\nTo: victim@example.org\r\nSubject: x\r\n")
    report = report.replace(b"Version: 1\r\n", b"Version: 1\r\nOriginal-Rcpt-To: "
                            b"victim@example.org\r\n")
    assert (await deliver(policy_relay, "fbl@" + BOUNCE_DOMAIN, report))[0] == 250
    assert policy_relay.stores.suppressions.entries() == []
    assert events(policy_relay)[-1].trust == "unverified"


async def test_replayed_complaint_with_a_genuine_token_counts_once(
        policy_relay: PolicyRelay, signer: TokenSigner) -> None:
    policy_relay.stores.campaigns.approve("spring", actor=ADMIN)
    report = arf(_complaint_headers(signer, "p3@example.org"))
    for _ in range(10):
        assert (await deliver(policy_relay, "fbl@" + BOUNCE_DOMAIN, report))[0] == 250
    [view] = policy_relay.stores.campaigns.views()
    assert view.complaints == 1
    [entry] = policy_relay.stores.suppressions.entries()
    assert (entry.address, entry.scope) == ("p3@example.org", "marketing")


async def test_dkim_signed_complaint_from_a_trusted_reporter_counts_once(
        policy_relay: PolicyRelay, dns_server: DnsServer) -> None:
    key = generate_key("rsa")
    record = dns_record(key)
    chunks = " ".join(f'"{record[i:i + 200]}"' for i in range(0, len(record), 200))
    dns_server.set("fbl._domainkey.aol.com", [("TXT", chunks)])
    report = arf("From: news@practice.test\r\nTo: pat@example.org\r\nSubject: x\r\n")
    report = report.replace(b"From: fbl@isp.example", b"From: scomp@aol.com").replace(
        b"Version: 1\r\n", b"Version: 1\r\nOriginal-Rcpt-To: pat@example.org\r\n").replace(
        b"Subject: complaint\r\n", b"Subject: complaint\r\nMessage-ID: <fbl-1@aol.com>\r\n")
    signed = DkimSigner(domains=["aol.com"], selector="fbl", rsa_key=key).sign(report)
    for _ in range(3):
        assert (await deliver(policy_relay, "fbl@" + BOUNCE_DOMAIN, signed))[0] == 250
    [entry] = policy_relay.stores.suppressions.entries()
    assert (entry.address, entry.scope, entry.kind) == ("pat@example.org", "marketing",
                                                        "complaint")
    assert [e.trust for e in events(policy_relay)] == ["reporter", "duplicate", "duplicate"]


async def test_listener_reads_a_report_once_per_recipient_and_caps_recipients(
        policy_relay: PolicyRelay, signer: TokenSigner) -> None:
    listen = policy_relay.settings.feedback.listen
    async with aiosmtplib.SMTP(hostname=listen.host, port=listen.port, start_tls=False,
                               timeout=15) as client:
        await client.mail("")
        for _ in range(30):
            assert (await client.rcpt(POSTMASTER))[0] == 250  # duplicates: one recipient
        await client.data(dsn(["victim@example.org"]))
    assert len(events(policy_relay)) == 1
    limit = policy_relay.settings.feedback.max_recipients
    addresses = [verp(policy_relay, signer, f"p{i}@example.org") for i in range(limit + 1)]
    async with aiosmtplib.SMTP(hostname=listen.host, port=listen.port, start_tls=False,
                               timeout=15) as client:
        await client.mail("")
        for address in addresses[:limit]:
            assert (await client.rcpt(address))[0] == 250
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
            await client.rcpt(addresses[limit])
        assert refused.value.code == 452


async def test_listener_limits_sessions_per_ip(policy_relay: PolicyRelay) -> None:
    listen = policy_relay.settings.feedback.listen
    limit = policy_relay.settings.feedback.max_sessions_per_ip
    held = []
    for _ in range(limit):
        client = aiosmtplib.SMTP(hostname=listen.host, port=listen.port, start_tls=False,
                                 timeout=15)
        await client.connect()
        held.append(client)
    refused = aiosmtplib.SMTP(hostname=listen.host, port=listen.port, start_tls=False,
                              timeout=15)
    with pytest.raises(aiosmtplib.SMTPException):
        await refused.connect()
        await refused.ehlo()
    for client in held:
        await client.quit()
    await asyncio.sleep(0.2)
    again = aiosmtplib.SMTP(hostname=listen.host, port=listen.port, start_tls=False,
                            timeout=15)
    await again.connect()
    await again.quit()
