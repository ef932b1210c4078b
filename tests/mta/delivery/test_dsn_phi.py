"""Issue 13 finding 3: a PHI message that could not get TLS expired, and its DSN went out
over the same hop WITHOUT TLS, quoting the Subject; after a 5xx the DSN went over
unverified TLS and quoted the remote reply; DSNs were not DKIM-signed.

Now a DSN about PHI mail inherits the PHI verdict (so the TLS rule), carries only what
RFC 3464 needs, and comes From our domain, DKIM-signed. The sinks are real SMTP servers
on loopback; the plain one offers no STARTTLS, the other a certificate for another name.
"""

from __future__ import annotations

import email
import email.policy
from pathlib import Path
from typing import Any

import dkim
from helpers.leaks import leaks
from helpers.smtp_sink import SmtpSink
from sqlalchemy import select

from phigate.mta.delivery.dkim import DkimSigner, dns_record, generate_key
from phigate.mta.delivery.scheduler import DeliveryScheduler
from phigate.queue.models import Message, MessageClass, Recipient, RecipientState
from phigate.queue.store import NewMessage, SqlQueueStore

from .conftest import FakeClock

SENDER = "ehr@practice.test"
PHI_BODY = (b"From: EHR <ehr@practice.test>\r\nTo: Jane Roe <jane@example.test>\r\n"
            b"Subject: Lab results for Jane Roe SSN 123-45-6789\r\n"
            b"Message-ID: <lab-42@practice.test>\r\n\r\n"
            b"Your HIV test result is attached. MRN 48213977.\r\n")
LEAKS = (b"Jane Roe", b"123-45-6789", b"Lab results", b"HIV", b"48213977", b"EHR <")


class Hops:
    """example.test (the patient) and practice.test (the sender, where DSNs go)."""

    def __init__(self, dns: Any, store: SqlQueueStore, make_settings: Any, ca_file: Path,
                 patient: SmtpSink, practice: SmtpSink, **delivery: Any) -> None:
        self.dns, self.store, self.clock = dns, store, FakeClock()
        self.patient, self.practice = patient, practice
        self.key = generate_key("rsa")
        # Names the test certificate covers (server_tls); wrong_name_tls covers neither.
        dns.set("example.test", [("MX", "10 mx1.example.test.")])
        dns.set("mx1.example.test", [("A", patient.hostname)])
        dns.set("practice.test", [("MX", "10 mx2.example.test.")])
        dns.set("mx2.example.test", [("A", practice.hostname)])
        assert patient.port == practice.port  # one mx_port for both
        self.settings = make_settings(delivery={
            "dns_servers": [dns.address], "ca_file": str(ca_file), "mx_port": patient.port,
            "connect_timeout_seconds": 5.0, "command_timeout_seconds": 5.0,
            "poll_interval_seconds": 0.05, **delivery})
        self.scheduler = DeliveryScheduler(
            self.settings, store, clock=self.clock,
            signer=DkimSigner(domains=["practice.test"], selector="s1", rsa_key=self.key))

    def enqueue_phi(self, recipient: str = "jane@example.test") -> str:
        return self.store.enqueue(NewMessage(
            sender=SENDER, recipients=[recipient], body=PHI_BODY, phi_verdict="phi",
            message_class=MessageClass.TREATMENT), now=self.clock.now())

    async def run_until_final(self, message_id: str) -> None:
        for _ in range(200):
            await self.scheduler.run_until_empty()
            if all(r.state.is_final for r in self.recipients(message_id)):
                return
            self.clock.advance(3600)
        raise AssertionError("never reached a final state")

    def recipients(self, message_id: str) -> list[Recipient]:
        with self.store.writing() as session:
            return list(session.scalars(select(Recipient).where(
                Recipient.message_id == message_id)))

    def dsn_rows(self) -> list[Message]:
        with self.store.writing() as session:
            return list(session.scalars(select(Message).where(Message.sender == "")))


def nulls(sink: SmtpSink) -> list[bytes]:
    return [m.content for m in sink.messages if m.mail_from in ("", "<>")]


async def test_dsn_about_phi_never_leaves_over_a_hop_without_tls(
        dns, sink_factory, store, make_settings, ca_file) -> None:
    # One plain MX for both domains: the DSN would take the same hop as the original.
    plain = sink_factory(tls=None)
    hops = Hops(dns, store, make_settings, ca_file, plain, plain)
    message_id = hops.enqueue_phi()

    await hops.run_until_final(message_id)
    [recipient] = hops.recipients(message_id)
    assert recipient.state in (RecipientState.EXPIRED, RecipientState.BOUNCED)
    dsns = hops.dsn_rows()  # the final DSN (and a delay notice before it)
    assert dsns and all(dsn.phi_verdict == "phi" for dsn in dsns)  # inherited: PHI TLS rule
    for _ in range(5):  # and they keep waiting, never sent in clear
        hops.clock.advance(3600)
        await hops.scheduler.run_until_empty()
    assert plain.messages == []
    for dsn in dsns:
        [dsn_recipient] = hops.recipients(dsn.id)
        # Waiting for TLS, or given up on for want of it (a bounce is never bounced).
        assert dsn_recipient.state is not RecipientState.DELIVERED
        assert "TLS required for PHI" in (dsn_recipient.last_text or "")


async def test_dsn_about_phi_refused_over_unverified_tls_after_a_5xx(
        dns, sink_factory, store, make_settings, ca_file, server_tls,
        wrong_name_tls) -> None:
    patient = sink_factory(tls=server_tls)
    practice = sink_factory(tls=wrong_name_tls, port=patient.port, address="127.0.0.2")
    patient.script_rcpt("jane@example.test", "550 5.1.1 <jane@example.test> Jane Roe SSN "
                                             "123-45-6789 unknown")
    hops = Hops(dns, store, make_settings, ca_file, patient, practice)
    message_id = hops.enqueue_phi()

    await hops.scheduler.run_until_empty()

    assert hops.recipients(message_id)[0].state is RecipientState.BOUNCED
    assert nulls(practice) == []  # unverified certificate: not good enough for PHI
    [dsn] = hops.dsn_rows()
    assert hops.recipients(dsn.id)[0].state is RecipientState.DEFERRED


async def test_dsn_about_phi_carries_only_rfc3464_fields_and_is_dkim_signed(
        dns, sink_factory, store, make_settings, ca_file, server_tls) -> None:
    verified = sink_factory(tls=server_tls)
    verified.script_rcpt("jane@example.test", "550 5.1.1 <jane@example.test> Jane Roe SSN "
                                              "123-45-6789 unknown")
    hops = Hops(dns, store, make_settings, ca_file, verified, verified)
    message_id = hops.enqueue_phi()

    await hops.scheduler.run_until_empty()
    await hops.scheduler.run_until_empty()

    [raw] = nulls(verified)
    [received] = [m for m in verified.messages if m.mail_from in ("", "<>")]
    assert received.tls_version is not None
    assert leaks(raw, LEAKS) == []
    dsn = email.message_from_bytes(raw, policy=email.policy.default)
    assert dsn["From"].addresses[0].domain == "practice.test"
    assert b"Message-ID: <lab-42@practice.test>" in raw
    assert f"X-Phigate-Queue-Id: {message_id}".encode() in raw
    assert b"Final-Recipient: rfc822; jane@example.test" in raw
    assert b"Diagnostic-Code: smtp; 550 5.1.1\r\n" in raw
    assert b"Action: failed" in raw and b"Status: 5.1.1" in raw
    assert b"Remote-MTA" not in raw
    record = dns_record(hops.key, "rsa").encode()
    assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: record)


async def test_delay_notice_about_phi_is_minimal_and_waits_for_tls(
        dns, sink_factory, store, make_settings, ca_file, server_tls) -> None:
    verified = sink_factory(tls=server_tls)
    plain = sink_factory(tls=None, port=verified.port, address="127.0.0.2")
    # The patient's MX has no TLS (the PHI message waits); the practice's is verified.
    hops = Hops(dns, store, make_settings, ca_file, plain, verified,
                delay_warning_seconds=600, phi_tls_max_wait_seconds=0)
    message_id = hops.enqueue_phi()

    await hops.scheduler.run_until_empty()
    hops.clock.advance(3600)
    await hops.scheduler.run_until_empty()
    await hops.scheduler.run_until_empty()

    assert hops.recipients(message_id)[0].state is RecipientState.DEFERRED
    assert plain.messages == []
    [raw] = nulls(verified)
    assert b"Action: delayed" in raw
    assert leaks(raw, LEAKS) == []
    assert all(row.phi_verdict == "phi" for row in hops.dsn_rows())
