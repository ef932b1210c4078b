"""The feedback listener over real SMTP: only our addresses, then bounces, complaints and
mailto unsubscribes become suppressions; a campaign over the complaint rate is paused."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiosmtplib
import pytest
from helpers.queue import delivered
from sqlalchemy import select

from phigate.config import Settings
from phigate.mta.delivery.decorate import decorate
from phigate.policy.tokens import TokenSigner, unsubscribe_headers
from phigate.queue.db import make_engine, upgrade
from phigate.queue.models import Message, MessageClass, MessageState, RecipientState
from phigate.queue.policy_models import Campaign, FeedbackEvent
from phigate.queue.store import NewMessage
from phigate.serve import start_services, stop_services
from policy.support import ADMIN, PolicyRelay

BOUNCE_DOMAIN = "bounces.practice.test"


async def deliver(relay: PolicyRelay, recipient: str, content: bytes, sender: str = ""
                  ) -> tuple[int, str]:
    listen = relay.settings.feedback.listen
    async with aiosmtplib.SMTP(hostname=listen.host, port=listen.port, start_tls=False,
                               timeout=15) as client:
        await client.mail(sender)
        try:
            await client.rcpt(recipient)
        except aiosmtplib.SMTPRecipientRefused as refused:
            return refused.code, refused.message
        response = await client.data(content)
        return response.code, response.message


def verp(relay: PolicyRelay, signer: TokenSigner, recipient: str, *,
         message_class: MessageClass = MessageClass.TREATMENT, campaign: str | None = None) -> str:
    return decorate(b"Subject: x\r\n\r\nbody\r\n", recipient=recipient,
                    sender="news@practice.test", message_class=message_class,
                    campaign_id=campaign, settings=relay.settings, signer=signer).mail_from


def dsn(recipient: str, status: str, action: str = "failed") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.org\r\nTo: bounces@practice.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} mailbox problem\r\n\r\n--B--\r\n"
    ).encode()


def arf(returned_headers: str, feedback_type: str = "abuse") -> bytes:
    return (
        "From: fbl@isp.example\r\nTo: fbl@bounces.practice.test\r\nSubject: complaint\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; '
        'boundary="F"\r\n\r\n--F\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n'
        "--F\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: {feedback_type}\r\nUser-Agent: isp-fbl/1.0\r\nVersion: 1\r\n\r\n"
        f"--F\r\nContent-Type: text/rfc822-headers\r\n\r\n{returned_headers}\r\n--F--\r\n"
    ).encode()


def enqueue(relay: PolicyRelay, recipients: list[str], *,
            message_class: MessageClass = MessageClass.TREATMENT,
            campaign: str | None = None) -> str:
    return relay.runtime.store.enqueue(NewMessage(
        sender="news@practice.test", recipients=recipients, body=b"Subject: x\r\n\r\nhi\r\n",
        message_class=message_class, campaign_id=campaign))


def states(relay: PolicyRelay, message_id: str) -> list[RecipientState]:
    return [r.state for r in relay.runtime.store.get_message(message_id).recipients]


async def test_only_our_addresses_no_auth(policy_relay: PolicyRelay, signer: TokenSigner
                                          ) -> None:
    assert await deliver(policy_relay, "someone@example.org", b"x") == (
        550, "5.7.1 relay not permitted")
    assert (await deliver(policy_relay, "bounces+abcdefghijklmnopqrstu@" + BOUNCE_DOMAIN,
                          b"x"))[0] == 550
    forged = TokenSigner(b"not our key, but 32 bytes long..")
    assert (await deliver(policy_relay, verp(policy_relay, forged, "x@example.org"), b"x")
            )[0] == 550
    listen = policy_relay.settings.feedback.listen
    async with aiosmtplib.SMTP(hostname=listen.host, port=listen.port, start_tls=False,
                               timeout=10) as client:
        await client.ehlo()
        assert "starttls" in client.esmtp_extensions  # the relay's certificate exists
        assert "auth" not in client.esmtp_extensions
        response = await client.execute_command(b"AUTH", b"PLAIN", b"AGEAYg==")
        assert response.code == 502


async def test_hard_bounce_suppresses_all_and_cancels_queued_mail(
    policy_relay: PolicyRelay, signer: TokenSigner
) -> None:
    queued = enqueue(policy_relay, ["gone@example.org", "here@example.org"])
    address = verp(policy_relay, signer, "gone@example.org")
    assert address.startswith("bounces+") and address.endswith("@" + BOUNCE_DOMAIN)
    code, _ = await deliver(policy_relay, address, dsn("gone@example.org", "5.1.1"))
    assert code == 250
    [entry] = policy_relay.stores.suppressions.entries()
    assert (entry.address, entry.scope, entry.kind) == ("gone@example.org", "all",
                                                        "hard_bounce")
    assert states(policy_relay, queued) == [RecipientState.CANCELLED, RecipientState.QUEUED]


async def test_soft_bounces_suppress_after_the_limit(policy_relay: PolicyRelay,
                                                     signer: TokenSigner) -> None:
    address = verp(policy_relay, signer, "full@example.org")
    for attempt in range(3):  # soft_bounce_limit = 3 in these settings
        assert policy_relay.stores.suppressions.entries() == [], attempt
        code, _ = await deliver(policy_relay, address, dsn("full@example.org", "5.2.2"))
        assert code == 250
    [entry] = policy_relay.stores.suppressions.entries()
    assert (entry.scope, entry.kind) == ("all", "soft_bounces")


async def test_mailto_unsubscribe_suppresses_marketing(policy_relay: PolicyRelay,
                                                       signer: TokenSigner) -> None:
    header = unsubscribe_headers(signer, "fan@example.org", "spring", "", BOUNCE_DOMAIN)
    mailto = header["List-Unsubscribe"].split("mailto:")[1].rstrip(">")
    code, _ = await deliver(policy_relay, mailto,
                            b"From: fan@example.org\r\nSubject: unsubscribe\r\n\r\n\r\n",
                            sender="fan@example.org")
    assert code == 250
    [entry] = policy_relay.stores.suppressions.entries()
    assert (entry.address, entry.scope, entry.kind) == ("fan@example.org", "marketing",
                                                        "unsubscribe")


def campaign_with_ten_delivered(relay: PolicyRelay) -> tuple[str, str]:
    """An approved campaign with ten delivered copies and one more queued: (sent, waiting)."""
    store = relay.runtime.store
    relay.stores.campaigns.approve("spring", actor=ADMIN)
    sent = enqueue(relay, [f"p{i}@example.org" for i in range(10)],
                   message_class=MessageClass.MARKETING, campaign="spring")
    now = datetime.now(UTC)
    for claimed in store.claim_due("test", now=now, limit=100, lease_seconds=60):
        assert delivered(store, claimed.recipient_id, "test", now=now)
    waiting = enqueue(relay, ["later@example.org"], message_class=MessageClass.MARKETING,
                      campaign="spring")
    return sent, waiting


async def complain(relay: PolicyRelay, signer: TokenSigner, recipient: str) -> None:
    """A complaint to the FBL mailbox; the recipient and the campaign come from the signed
    List-Unsubscribe of the returned message."""
    returned = "\r\n".join(f"{name}: {value}" for name, value in unsubscribe_headers(
        signer, recipient, "spring", "https://relay.practice.test", BOUNCE_DOMAIN
    ).items()) + f"\r\nFrom: news@practice.test\r\nTo: {recipient}\r\nSubject: Spring\r\n"
    code, _ = await deliver(relay, "fbl@" + BOUNCE_DOMAIN, arf(returned))
    assert code == 250


async def test_complaints_pause_a_campaign_over_the_threshold(
    policy_relay: PolicyRelay, signer: TokenSigner, caplog: pytest.LogCaptureFixture
) -> None:
    stores, store = policy_relay.stores, policy_relay.runtime.store
    sent, waiting = campaign_with_ten_delivered(policy_relay)
    caplog.set_level(logging.WARNING, logger="phigate.campaigns")
    await complain(policy_relay, signer, "p3@example.org")

    [view] = stores.campaigns.views()
    assert (view.state, view.delivered, view.complaints) == ("paused", 10, 1)
    assert store.get_message(waiting).state == MessageState.HELD
    assert store.get_message(sent).state == MessageState.DONE
    [entry] = stores.suppressions.entries()
    assert (entry.address, entry.scope, entry.kind) == ("p3@example.org", "marketing",
                                                        "complaint")
    [pause] = policy_relay.runtime.audit.entries(action="campaign.pause")
    assert pause["actor"] == "phigate" and pause["detail"]["held_messages"] == 1
    assert any("campaign_paused" in r.getMessage() for r in caplog.records)
    assert not any("p3@example.org" in r.getMessage() for r in caplog.records)
    with store.writing() as session:
        event = session.scalar(select(FeedbackEvent))
        assert event is not None and event.kind == "complaint"
        assert event.feedback_type == "abuse" and event.campaign_id == "spring"
        assert event.authentication_results is not None
        assert event.authentication_results.startswith(policy_relay.settings.server.hostname)
    # An admin looks into it and resumes: the held message goes back to the queue.
    assert len(stores.campaigns.approve("spring", actor=ADMIN)) == 1
    assert store.get_message(waiting).state == MessageState.ACTIVE
    with store.writing() as session:
        campaign = session.get(Campaign, "spring")
        assert campaign is not None and campaign.state == "approved"


@pytest.fixture
async def noticing_relay(policy_settings: Settings) -> AsyncIterator[PolicyRelay]:
    """The relay with review notices on for marketing mail."""
    settings = dataclasses.replace(policy_settings, policy=dataclasses.replace(
        policy_settings.policy, review_notice_classes=["marketing"]))
    engine = make_engine(settings.storage.url)
    upgrade(engine)
    engine.dispose()
    running = await start_services(settings, {"smtp"})
    try:
        yield PolicyRelay(settings, running, running.policy_stores)  # type: ignore[arg-type]
    finally:
        await stop_services(running, grace=2)


async def test_a_campaign_paused_by_complaints_tells_the_senders_of_held_mail(
        signer: TokenSigner, noticing_relay: PolicyRelay) -> None:
    store = noticing_relay.runtime.store
    _, waiting = campaign_with_ten_delivered(noticing_relay)
    await complain(noticing_relay, signer, "p3@example.org")
    assert store.get_message(waiting).state == MessageState.HELD
    with store.reading() as session:
        [notice_id] = session.scalars(select(Message.id).where(Message.sender == "")).all()
    notice = store.read_body(notice_id).decode()
    assert [r.address for r in store.get_message(notice_id).recipients] == [
        "news@practice.test"]
    assert "X-Phigate-Review: held" in notice and f"X-Phigate-Queue-Id: {waiting}" in notice
    assert "Final-Recipient: rfc822; later@example.org" in notice
    assert "complaint" not in notice.lower()  # never why it waits
