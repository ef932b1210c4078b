"""The SMTP client against real aiosmtpd servers on loopback, routed by a real DNS server."""

from __future__ import annotations

import asyncio

import pytest
from helpers.net import free_port
from helpers.outbound import BODY, message, mx
from helpers.smtp_sink import DROP, Stall

from phigate.config import DomainPolicy
from phigate.mta.delivery.client import SmtpTransport


async def test_starttls_verified_one_transaction_for_several_recipients(
        dns, sink_factory, server_tls, transport_for) -> None:
    sink = sink_factory(tls=server_tls)
    mx(dns)
    transport = transport_for(mx_port=sink.port, tls_default="verify")

    result = await transport.deliver(message("pat@example.test", "kim@example.test"))

    assert [o.code for o in result.outcomes] == [250, 250]
    assert all(o.delivered and not o.permanent for o in result.outcomes)
    assert result.tls.version in ("TLSv1.2", "TLSv1.3") and result.tls.cipher
    assert result.tls.cert_verified is True
    assert result.host == f"mx1.example.test[127.0.0.1]:{sink.port}"
    [received] = sink.messages
    assert received.rcpt_tos == ("pat@example.test", "kim@example.test")
    assert received.tls_version == result.tls.version
    assert received.content.replace(b"\r\n", b"\n") == BODY.replace(b"\r\n", b"\n")


async def test_phi_never_sent_in_clear(dns, sink_factory, transport_for) -> None:
    sink = sink_factory(tls=None)  # offers no STARTTLS
    mx(dns)
    transport = transport_for(mx_port=sink.port)

    result = await transport.deliver(message(phi=True))

    [outcome] = result.outcomes
    assert not outcome.delivered and not outcome.permanent
    assert outcome.text.endswith("TLS required for PHI: mx1.example.test offers no STARTTLS")
    assert result.tls.version is None
    assert sink.messages == []
    assert ("MAIL", "") not in sink.commands  # not even the envelope went out


async def test_phi_with_an_unverifiable_certificate_waits(
        dns, sink_factory, wrong_name_tls, transport_for) -> None:
    sink = sink_factory(tls=wrong_name_tls)
    mx(dns)
    transport = transport_for(mx_port=sink.port)

    [outcome] = (await transport.deliver(message(phi=True))).outcomes

    assert outcome.code == 454 and not outcome.permanent
    assert "certificate" in outcome.text
    assert sink.messages == []


async def test_ordinary_mail_is_opportunistic(
        dns, sink_factory, wrong_name_tls, transport_for) -> None:
    plain = sink_factory(tls=None)
    mx(dns)
    result = await transport_for(mx_port=plain.port).deliver(message())
    assert result.outcomes[0].delivered and result.tls.version is None

    # Encrypted but unverified: delivered, and the attempt says it was not verified.
    mismatched = sink_factory(tls=wrong_name_tls)
    result = await transport_for(mx_port=mismatched.port).deliver(message())
    assert result.outcomes[0].delivered
    assert result.tls.version is not None and result.tls.cert_verified is False


async def test_domain_policy_required_accepts_any_certificate_for_phi(
        dns, sink_factory, wrong_name_tls, transport_for) -> None:
    sink = sink_factory(tls=wrong_name_tls)
    mx(dns)
    transport = transport_for(mx_port=sink.port,
                              domains={"example.test": DomainPolicy(tls="required")})
    result = await transport.deliver(message(phi=True))
    assert result.outcomes[0].delivered and result.tls.encrypted
    assert not result.tls.cert_verified

    # ... but a domain policy cannot send PHI in clear.
    plain = sink_factory(tls=None)
    transport = transport_for(mx_port=plain.port,
                              domains={"example.test": DomainPolicy(tls="opportunistic")})
    result = await transport.deliver(message(phi=True))
    assert not result.outcomes[0].delivered and plain.messages == []


async def test_rcpt_failures_are_per_recipient(
        dns, sink_factory, transport_for) -> None:
    sink = sink_factory()
    mx(dns)
    sink.script_rcpt("gone@example.test", "550 5.1.1 no such user")
    sink.script_rcpt("full@example.test", "452 4.2.2 mailbox full")

    result = await transport_for(mx_port=sink.port).deliver(
        message("gone@example.test", "pat@example.test", "full@example.test"))

    gone, pat, full = result.outcomes
    assert (gone.code, gone.permanent, gone.status) == (550, True, "5.1.1")
    assert pat.delivered
    assert (full.code, full.permanent, full.status) == (452, False, "4.2.2")
    [received] = sink.messages
    assert received.rcpt_tos == ("pat@example.test",)


async def test_all_recipients_refused_sends_no_data(
        dns, sink_factory, transport_for) -> None:
    sink = sink_factory()
    mx(dns)
    sink.script("RCPT", "550 5.7.1 relaying denied", times=None)
    result = await transport_for(mx_port=sink.port).deliver(message())
    assert result.outcomes[0].permanent and sink.messages == []
    assert "DATA" not in [command for command, _ in sink.commands]


@pytest.mark.parametrize(("command", "reply", "permanent"), [
    ("MAIL", "451 4.3.0 local trouble", False),
    ("MAIL", "553 5.1.8 bad sender", True),
    ("DATA", "554 5.6.0 content rejected", True),
    ("DATA", "452 4.3.1 out of space", False),
])
async def test_transaction_replies_apply_to_every_recipient(
        dns, sink_factory, transport_for, command, reply, permanent) -> None:
    sink = sink_factory()
    mx(dns)
    sink.script(command, reply)
    result = await transport_for(mx_port=sink.port).deliver(
        message("pat@example.test", "kim@example.test"))
    assert [o.code for o in result.outcomes] == [int(reply[:3])] * 2
    assert all(o.permanent is permanent for o in result.outcomes)
    assert sink.messages == []


async def test_dropped_and_stalled_connections_are_temporary(
        dns, sink_factory, transport_for) -> None:
    sink = sink_factory()
    mx(dns)
    transport = transport_for(mx_port=sink.port, command_timeout_seconds=0.5)

    sink.script("DATA", DROP)
    [dropped] = (await transport.deliver(message())).outcomes
    sink.script("RCPT", Stall(2.0))
    [stalled] = (await transport.deliver(message())).outcomes

    assert dropped.code == 451 and not dropped.permanent and "connection lost" in dropped.text
    assert stalled.code == 451 and not stalled.permanent and "timed out" in stalled.text
    assert sink.messages == []


async def test_next_mx_is_tried_when_the_first_is_unreachable(
        dns, sink_factory, transport_for) -> None:
    port = free_port()
    second = sink_factory(port=port, address="127.0.0.3")
    # mx1 (preference 10) points at an address where nothing listens.
    mx(dns, ("mx1.example.test", "127.0.0.2"), ("mx2.example.test", "127.0.0.3"))

    result = await transport_for(mx_port=port).deliver(message())

    assert result.outcomes[0].delivered
    assert result.host == f"mx2.example.test[127.0.0.3]:{port}"
    assert len(second.messages) == 1


async def test_a_421_greeting_moves_on_and_reports_a_rate_limit(
        dns, sink_factory, transport_for) -> None:
    port = free_port()
    busy = sink_factory(port=port, address="127.0.0.2")
    busy.script("EHLO", "421 4.7.0 too many connections, slow down", times=None)
    mx(dns, ("mx1.example.test", "127.0.0.2"))

    result = await transport_for(mx_port=port).deliver(message())

    [outcome] = result.outcomes
    assert outcome.code == 421 and not outcome.permanent
    assert result.rate_limited


async def test_connections_are_reused(dns, sink_factory, server_tls,
                                      transport_for) -> None:
    sink = sink_factory(tls=server_tls)
    mx(dns)
    transport = transport_for(mx_port=sink.port)
    for _ in range(3):
        result = await transport.deliver(message())
        assert result.outcomes[0].delivered
    assert len(sink.messages) == 3
    assert sink.sessions == 1


async def test_a_connection_closed_by_the_server_is_replaced(
        dns, sink_factory, transport_for) -> None:
    sink = sink_factory(timeout=0.3)  # the server drops idle sessions after 0.3 s
    mx(dns)
    transport = transport_for(mx_port=sink.port)
    assert (await transport.deliver(message())).outcomes[0].delivered
    await asyncio.sleep(0.6)
    assert (await transport.deliver(message())).outcomes[0].delivered
    assert sink.sessions == 2


async def test_a_reused_connection_carries_only_the_next_transaction(
        dns, sink_factory, server_tls, transport_for) -> None:
    # No NOOP or RSET probe before reuse: a kept connection is always between transactions.
    sink = sink_factory(tls=server_tls)
    mx(dns)
    transport = transport_for(mx_port=sink.port)
    for _ in range(3):
        assert (await transport.deliver(message())).outcomes[0].delivered
    [session] = {key for key, _ in sink.verbs}
    verbs = [verb for _, verb in sink.verbs]
    assert verbs == ["EHLO", "STARTTLS", "EHLO"] + ["MAIL", "RCPT", "DATA"] * 3


async def test_reuse_after_all_recipients_were_refused_follows_the_rset(
        dns, sink_factory, transport_for) -> None:
    sink = sink_factory()
    mx(dns)
    sink.script("RCPT", "550 5.1.1 no such user")
    transport = transport_for(mx_port=sink.port)
    assert (await transport.deliver(message())).outcomes[0].permanent
    assert (await transport.deliver(message())).outcomes[0].delivered
    verbs = [verb for _, verb in sink.verbs]
    assert verbs == ["EHLO", "MAIL", "RCPT", "RSET", "MAIL", "RCPT", "DATA"]
    assert sink.sessions == 1


async def test_a_kept_connection_closed_at_mail_is_replaced_and_the_message_sent(
        dns, sink_factory, server_tls, transport_for) -> None:
    # The server closes the kept connection just as our MAIL goes out: nothing of the
    # message was accepted, so it goes at once over a fresh connection, not deferred.
    sink = sink_factory(tls=server_tls)
    mx(dns)
    transport = transport_for(mx_port=sink.port)
    assert (await transport.deliver(message())).outcomes[0].delivered
    sink.script("MAIL", DROP)

    result = await transport.deliver(message("kim@example.test"))

    [outcome] = result.outcomes
    assert outcome.delivered and outcome.code == 250
    assert result.tls.encrypted
    assert sink.sessions == 2
    assert [m.rcpt_tos for m in sink.messages] == [("pat@example.test",),
                                                  ("kim@example.test",)]


async def test_a_fresh_connection_lost_at_mail_is_not_tried_again(
        dns, sink_factory, transport_for) -> None:
    sink = sink_factory()
    mx(dns)
    sink.script("MAIL", DROP)
    [outcome] = (await transport_for(mx_port=sink.port).deliver(message())).outcomes
    assert outcome.code == 451 and "connection lost" in outcome.text
    assert sink.sessions == 1 and sink.messages == []


@pytest.mark.parametrize(("command", "action"), [
    ("DATA", DROP),  # the message may have been taken: never sent twice at once
    ("RCPT", DROP),
    ("MAIL", "550 5.7.1 sender refused"),  # a refusal, not a closed connection
    ("MAIL", "421 4.3.2 service shutting down"),  # the server's word: this attempt's outcome
])
async def test_other_failures_of_a_reused_connection_are_not_retried(
        dns, sink_factory, transport_for, command, action) -> None:
    sink = sink_factory()
    mx(dns)
    transport = transport_for(mx_port=sink.port)
    assert (await transport.deliver(message())).outcomes[0].delivered
    sink.script(command, action)
    [outcome] = (await transport.deliver(message())).outcomes
    assert not outcome.delivered
    assert sink.sessions == 1 and len(sink.messages) == 1


async def test_smarthost_with_auth_after_starttls(
        dns, sink_factory, server_tls, delivery_settings) -> None:
    relay = sink_factory(tls=server_tls, credentials={"practice": "s3cret"})
    dns.set("relay.partner.test", [("A", "127.0.0.1")])
    transport = SmtpTransport(
        delivery_settings(smarthost=f"relay.partner.test:{relay.port}",
                          smarthost_username="practice", tls_default="verify"),
        local_hostname="relay.test", smarthost_password="s3cret")
    try:
        result = await transport.deliver(message(domain="anywhere.test"))
    finally:
        await transport.aclose()
    assert result.outcomes[0].delivered
    assert result.tls.cert_verified
    assert relay.logins == ["practice"]


async def test_smarthost_wrong_password_defers(
        dns, sink_factory, server_tls, delivery_settings) -> None:
    relay = sink_factory(tls=server_tls, credentials={"practice": "s3cret"})
    dns.set("relay.partner.test", [("A", "127.0.0.1")])
    transport = SmtpTransport(
        delivery_settings(smarthost=f"relay.partner.test:{relay.port}",
                          smarthost_username="practice"),
        local_hostname="relay.test", smarthost_password="wrong")
    try:
        [outcome] = (await transport.deliver(message())).outcomes
    finally:
        await transport.aclose()
    assert not outcome.delivered and not outcome.permanent
    assert "authentication failed" in outcome.text
    assert relay.messages == []


async def test_smarthost_implicit_tls(dns, sink_factory, server_tls,
                                      delivery_settings) -> None:
    relay = sink_factory(implicit_tls=server_tls)
    dns.set("relay.partner.test", [("A", "127.0.0.1")])
    transport = SmtpTransport(
        delivery_settings(smarthost=f"relay.partner.test:{relay.port}",
                          smarthost_tls="implicit"),
        local_hostname="relay.test")
    try:
        result = await transport.deliver(message(phi=True))
    finally:
        await transport.aclose()
    assert result.outcomes[0].delivered
    assert result.tls.cert_verified and relay.messages[0].tls_version == result.tls.version
