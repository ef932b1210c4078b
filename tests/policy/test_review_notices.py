"""Issue 13 finding 6: a quarantined, held or awaiting-approval message got ``250 Queued`` and
nothing after; the EHR believed the patient was mailed.

Now, for the classes in ``[policy] review_notice_classes``, the sender gets a short RFC 3464
report when its message is held for review (``Action: delayed``, ``Status: 4.7.0``), and a
final one when an admin releases or rejects it; none of them carries PHI. Messages go in
over real SMTP sessions; the notices are read back from the queue.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import ssl
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from phigate.admin import AdminService, Identity
from phigate.config import AdminSettings, ScannerSettings, Settings
from phigate.phi_scanner import Scanner
from phigate.queue.db import make_engine, upgrade
from phigate.queue.models import Message, MessageState
from phigate.serve import start_services, stop_services
from policy.support import PASSWORD, PHI_RESULT, PolicyRelay, mail, submit

PATIENT = "Jane Roe <jane.roe@example.org>"
SUBJECT = "Lab results for Jane Roe SSN 123-45-6789"
LEAKS = ("Jane Roe", "Roe", "123-45-6789", "Lab results", "HIV", "48213977", "email_phi",
         "consent", "diagnosis")
OPERATOR = Identity("otto", frozenset({"staff"}), "203.0.113.7")


@pytest.fixture
async def relay(policy_settings: Settings) -> AsyncIterator[PolicyRelay]:
    settings = dataclasses.replace(
        policy_settings,
        policy=dataclasses.replace(policy_settings.policy,
                                   review_notice_classes=["treatment", "marketing"]),
        admin=AdminSettings(operators=["otto"]))
    engine = make_engine(settings.storage.url)
    upgrade(engine)
    engine.dispose()
    running = await start_services(settings, {"smtp"})
    running.runtime.accounts.add("clinic", PASSWORD, senders=["practice.test"],
                                 classes=["treatment", "operations", "marketing"])
    assert running.policy_stores is not None
    try:
        yield PolicyRelay(settings, running, running.policy_stores)
    finally:
        await stop_services(running, grace=2)


def phi_mail() -> email.message.EmailMessage:
    message = mail(to=PATIENT, message_class="treatment", sender="ehr@practice.test")
    del message["Subject"]
    message["Subject"] = SUBJECT
    message["Message-ID"] = "<lab-42@practice.test>"
    message.set_content("Your HIV test result is ready. MRN 48213977.\n")
    return message


def notices(relay: PolicyRelay, to: str) -> list[tuple[Message, bytes]]:
    """The reports queued to ``to`` (from the null sender), oldest first."""
    store = relay.runtime.store
    with store.reading() as session:
        rows = session.scalars(select(Message).where(Message.sender == "")
                               .order_by(Message.created_at, Message.id)).all()
    found = []
    for row in rows:
        view = store.get_message(row.id)
        if [r.address for r in view.recipients] == [to]:
            found.append((row, store.read_body(row.id)))
    return found


def assert_no_phi(raw: bytes) -> None:
    text = raw.decode()
    for leak in LEAKS:
        assert leak not in text, leak
    result = Scanner(ScannerSettings(ner="never")).scan_message(raw)
    assert result.verdict != "phi", result.categories


def fields(raw: bytes) -> str:
    report = email.message_from_bytes(raw, policy=email.policy.default)
    parts = list(report.iter_parts())
    assert report.get_content_type() == "multipart/report"
    assert parts[1].get_content_type() == "message/delivery-status"
    return raw.decode()


def service(relay: PolicyRelay) -> AdminService:
    runtime = relay.runtime
    return AdminService(runtime.store, runtime.audit, relay.settings, identity=OPERATOR)


async def test_quarantined_phi_gets_a_held_notice_then_a_released_one(
        relay: PolicyRelay, client_tls: ssl.SSLContext) -> None:
    relay.use_scanner(PHI_RESULT)
    queued = (await submit(relay, client_tls, phi_mail(), ["jane.roe@example.org"])).queued_id
    assert relay.runtime.store.get_message(queued).state is MessageState.QUARANTINED
    [(held_row, held)] = notices(relay, "ehr@practice.test")
    text = fields(held)
    assert "Action: delayed" in text and "Status: 4.7.0" in text
    assert "X-Phigate-Review: held" in text and f"X-Phigate-Queue-Id: {queued}" in text
    assert "Final-Recipient: rfc822; jane.roe@example.org" in text
    assert "Message-ID: <lab-42@practice.test>" in text
    assert "held for review" in text
    assert_no_phi(held)
    # It needs the TLS the PHI message needed, and it is not itself reviewed again.
    assert held_row.phi_verdict == "phi" and held_row.state is MessageState.ACTIVE

    [outcome] = service(relay).release([queued], reason="checked with the patient")
    assert outcome.ok, outcome.detail
    [_, (_, released)] = notices(relay, "ehr@practice.test")
    text = fields(released)
    assert "X-Phigate-Review: released" in text and "Status: 4.0.0" in text
    assert f"X-Phigate-Queue-Id: {queued}" in text
    assert_no_phi(released)


async def test_awaiting_approval_then_deleted_gets_a_rejected_notice(
        relay: PolicyRelay, client_tls: ssl.SSLContext) -> None:
    relay.grant("fan@example.org")
    message = mail(to="fan@example.org", message_class="marketing", campaign="spring",
                   sender="news@practice.test")
    queued = (await submit(relay, client_tls, message, ["fan@example.org"])).queued_id
    assert relay.runtime.store.get_message(queued).state is MessageState.AWAITING_APPROVAL
    [(_, held)] = notices(relay, "news@practice.test")
    assert "X-Phigate-Review: held" in fields(held) and "Status: 4.7.0" in held.decode()

    [outcome] = service(relay).delete([queued])
    assert outcome.ok, outcome.detail
    [_, (_, rejected)] = notices(relay, "news@practice.test")
    text = fields(rejected)
    assert "X-Phigate-Review: rejected" in text
    assert "Action: failed" in text and "Status: 5.7.1" in text
    assert "Final-Recipient: rfc822; fan@example.org" in text


async def test_classes_not_listed_and_accepted_mail_get_no_notice(
        relay: PolicyRelay, client_tls: ssl.SSLContext) -> None:
    accepted = mail(to="pat@example.org", message_class="treatment", sender="ehr@practice.test")
    assert (await submit(relay, client_tls, accepted, ["pat@example.org"])).data[0] == 250  # type: ignore[index]
    relay.use_scanner(PHI_RESULT)
    operations = phi_mail()
    del operations["X-Phigate-Class"]
    operations["X-Phigate-Class"] = "operations"  # not in review_notice_classes
    queued = (await submit(relay, client_tls, operations, ["jane.roe@example.org"])).queued_id
    assert relay.runtime.store.get_message(queued).state is MessageState.QUARANTINED
    assert notices(relay, "ehr@practice.test") == []


async def test_an_admin_hold_of_active_mail_is_told_too_and_its_release(
        relay: PolicyRelay, client_tls: ssl.SSLContext) -> None:
    accepted = mail(to="pat@example.org", message_class="treatment", sender="ehr@practice.test")
    queued = (await submit(relay, client_tls, accepted, ["pat@example.org"])).queued_id
    assert notices(relay, "ehr@practice.test") == []
    [held] = service(relay).hold([queued], reason="wrong patient?")
    assert held.ok, held.detail
    [released] = service(relay).release([queued])
    assert released.ok, released.detail
    reviews = [fields(raw) for _, raw in notices(relay, "ehr@practice.test")]
    assert ["X-Phigate-Review: held" in reviews[0], "X-Phigate-Review: released" in reviews[1]
            ] == [True, True]
    assert all("Final-Recipient: rfc822; pat@example.org" in text for text in reviews)
    assert all("wrong patient" not in text for text in reviews)


async def test_approving_a_campaign_tells_each_waiting_sender_it_was_released(
        relay: PolicyRelay, client_tls: ssl.SSLContext) -> None:
    relay.grant("fan@example.org")
    message = mail(to="fan@example.org", message_class="marketing", campaign="spring",
                   sender="news@practice.test")
    message["Message-ID"] = "<spring-1@practice.test>"
    queued = (await submit(relay, client_tls, message, ["fan@example.org"])).queued_id
    assert relay.runtime.store.get_message(queued).state is MessageState.AWAITING_APPROVAL

    assert service(relay).approve_campaign("spring") == 1
    [_, (_, released)] = notices(relay, "news@practice.test")
    text = fields(released)
    assert "X-Phigate-Review: released" in text and "Status: 4.0.0" in text
    assert f"X-Phigate-Queue-Id: {queued}" in text
    assert "Message-ID: <spring-1@practice.test>" in text
    assert "Final-Recipient: rfc822; fan@example.org" in text
    assert relay.runtime.store.get_message(queued).state is MessageState.ACTIVE


async def test_pausing_a_campaign_tells_the_senders_of_held_mail_and_resuming_releases(
        relay: PolicyRelay, client_tls: ssl.SSLContext) -> None:
    relay.grant("fan@example.org")
    relay.stores.campaigns.approve("spring", actor=OPERATOR.actor)
    message = mail(to="fan@example.org", message_class="marketing", campaign="spring",
                   sender="news@practice.test")
    queued = (await submit(relay, client_tls, message, ["fan@example.org"])).queued_id
    assert relay.runtime.store.get_message(queued).state is MessageState.ACTIVE
    assert notices(relay, "news@practice.test") == []

    assert service(relay).pause_campaign("spring", reason="complaints from Jane Roe") == 1
    [(_, held)] = notices(relay, "news@practice.test")
    text = fields(held)
    assert "X-Phigate-Review: held" in text and "Status: 4.7.0" in text
    assert "complaints" not in text and "Jane Roe" not in text  # never why it waits

    assert service(relay).approve_campaign("spring") == 1
    [_, (_, released)] = notices(relay, "news@practice.test")
    assert "X-Phigate-Review: released" in fields(released)


async def test_campaign_changes_queue_no_notice_for_classes_not_listed(
        relay: PolicyRelay, client_tls: ssl.SSLContext) -> None:
    quiet = dataclasses.replace(relay.settings, policy=dataclasses.replace(
        relay.settings.policy, review_notice_classes=["treatment"]))
    relay.grant("fan@example.org")
    message = mail(to="fan@example.org", message_class="marketing", campaign="spring",
                   sender="news@practice.test")
    await submit(relay, client_tls, message, ["fan@example.org"])
    admin = AdminService(relay.runtime.store, relay.runtime.audit, quiet, identity=OPERATOR)
    before = len(notices(relay, "news@practice.test"))  # the held notice at submission
    assert admin.approve_campaign("spring") == 1
    assert admin.pause_campaign("spring", reason="checking") == 1
    assert len(notices(relay, "news@practice.test")) == before
