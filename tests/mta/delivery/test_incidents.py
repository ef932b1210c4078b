"""Bounce incidents on the synchronous path: a receiving server refuses us for a reason on
our side (a DNSBL listing at RCPT). Nobody is suppressed, the domain gets an incident,
marketing to it waits, treatment mail is still tried and its delivery ends the incident."""

from __future__ import annotations

from helpers.smtp_sink import SmtpSink
from sqlalchemy import select

from phigate.audit.log import AuditLog
from phigate.mta.delivery.incident_watch import HOLD_TEXT, IncidentWatch
from phigate.mta.delivery.outcomes import RecipientOutcome
from phigate.mta.delivery.scheduler import DeliveryScheduler
from phigate.policy.incidents import IncidentStore
from phigate.policy.suppression import SuppressionStore
from phigate.queue.models import MessageClass, Recipient, RecipientState
from phigate.queue.store import NewMessage, SqlQueueStore

from .conftest import FakeClock

SENDER = "clinic@practice.test"
BLOCKED = "550 5.7.1 Service unavailable, client host [127.0.0.1] blocked using a DNSBL"


def body(message_class: MessageClass) -> bytes:
    return (f"From: Clinic <{SENDER}>\r\nTo: patient@example.test\r\nSubject: News\r\n"
            f"Message-ID: <{message_class}@practice.test>\r\n\r\nHello.\r\n").encode()


def test_the_same_classifier_reads_synchronous_replies() -> None:
    blocked = RecipientOutcome("pat@example.test", 550, BLOCKED, True, True, "rcpt")
    assert blocked.category == "blocked"
    gone = RecipientOutcome("pat@example.test", 550, "5.1.1 no such user", True, True, "rcpt")
    assert gone.category == "userunknown"
    assert RecipientOutcome("pat@example.test", 250, "ok", remote=True).category is None


async def test_blocked_at_rcpt_opens_an_incident_and_holds_marketing_only(
        store: SqlQueueStore, dns, sink_factory, server_tls, ca_file,
        make_settings) -> None:
    sink: SmtpSink = sink_factory(tls=server_tls)
    for domain in ("example.test", "practice.test"):
        dns.set(domain, [("MX", "10 mx1.example.test.")])
    dns.set("mx1.example.test", [("A", "127.0.0.1")])
    settings = make_settings(delivery={
        "dns_servers": [dns.address], "ca_file": str(ca_file), "mx_port": sink.port,
        "connect_timeout_seconds": 5.0, "command_timeout_seconds": 5.0,
        "poll_interval_seconds": 0.05})
    clock = FakeClock()
    audit = AuditLog(store.engine)
    incidents = IncidentStore(store.engine, audit)
    watch = IncidentWatch(incidents)

    def scheduler() -> DeliveryScheduler:
        return DeliveryScheduler(settings, store, clock=clock, incidents=watch)

    def enqueue(recipient: str, message_class: MessageClass) -> str:
        return store.enqueue(NewMessage(sender=SENDER, recipients=[recipient],
                                        body=body(message_class),
                                        message_class=message_class), now=clock.now())

    def recipient(message_id: str) -> Recipient:
        with store.reading() as session:
            found = session.scalar(select(Recipient).where(Recipient.message_id == message_id))
            assert found is not None
            return found

    sink.script_rcpt("pat@example.test", BLOCKED)
    first = enqueue("pat@example.test", MessageClass.MARKETING)
    await scheduler().run_until_empty()
    assert recipient(first).state is RecipientState.BOUNCED
    assert SuppressionStore(store.engine, audit).entries() == []  # nobody suppressed
    [incident] = incidents.entries()
    assert (incident.domain, incident.reason, incident.count) == ("example.test", "blocked", 1)

    held = enqueue("lee@example.test", MessageClass.MARKETING)
    await scheduler().run_until_empty()
    waiting = recipient(held)
    assert waiting.state is RecipientState.DEFERRED and waiting.last_text == HOLD_TEXT
    assert waiting.next_attempt_at == incident.hold_until
    assert ("RCPT", "lee@example.test") not in sink.commands  # not even tried

    reminder = enqueue("kim@example.test", MessageClass.TREATMENT)
    await scheduler().run_until_empty()
    assert ("RCPT", "kim@example.test") in sink.commands  # treatment keeps its schedule
    assert recipient(reminder).state is RecipientState.DELIVERED
    assert incidents.entries() == []  # a delivery there ended the incident
    [cleared] = audit.entries(action="incident.clear")
    assert cleared["detail"]["why"] == "delivered"
