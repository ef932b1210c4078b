"""Open-relay attempts beyond the ones in tests/mta: a client pretending to be on a trusted
network. The relay trusts 10.99.0.0/16; the test client connects from 127.0.0.1."""

from __future__ import annotations

import ssl
from collections.abc import Callable

from conftest import RelayHandle
from fuzz.wire import Wire

from phigate.config import Settings
from phigate.queue.db import make_engine, upgrade
from phigate.serve import start_services, stop_services

MAIL = b"MAIL FROM:<reminders@practice.test>"


async def tls_session(port: int, client_tls: ssl.SSLContext) -> Wire:
    wire, greeting = await Wire.open(port)
    assert greeting.startswith("220")
    await wire.login(client_tls, "", "")  # EHLO, STARTTLS, EHLO; no AUTH
    return wire


async def test_untrusted_client_over_tls_without_auth_is_refused(
    relay: RelayHandle, client_tls: ssl.SSLContext
) -> None:
    wire = await tls_session(relay.port, client_tls)
    assert (await wire.command(MAIL)).startswith("530 5.7.0")
    assert (await wire.command(b"RCPT TO:<victim@example.org>")).startswith("530")
    assert (await wire.command(b"DATA")).startswith("530")
    await wire.close()


async def test_claims_of_another_address_are_not_believed(
    relay: RelayHandle, client_tls: ssl.SSLContext
) -> None:
    """XCLIENT and the PROXY protocol let a front end vouch for a client address; phigate
    speaks neither, so a client cannot claim to be on the trusted network with them."""
    wire, _ = await Wire.open(relay.port)
    reply = await wire.command(b"PROXY TCP4 10.99.1.2 127.0.0.1 40000 587")
    assert reply.startswith("5"), reply
    await wire.close()

    wire = await tls_session(relay.port, client_tls)
    assert (await wire.command(b"XCLIENT ADDR=10.99.1.2 NAME=ehr.practice.test")
            ).startswith("500")
    assert (await wire.command(b"XFORWARD ADDR=10.99.1.2")).startswith("500")
    assert (await wire.command(b"EHLO [10.99.1.2]")).startswith("250")
    assert (await wire.command(MAIL)).startswith("530 5.7.0")
    await wire.close()


async def test_really_trusted_network_may_relay_but_only_over_tls(
    make_settings: Callable[..., Settings], client_tls: ssl.SSLContext
) -> None:
    """The control: when 127.0.0.0/8 IS trusted, the same session gets through, so the
    refusals above come from the network check and not from something else."""
    settings = make_settings(submission={"trusted_networks": ["127.0.0.0/8"]})
    engine = make_engine(settings.storage.url)
    upgrade(engine)
    engine.dispose()
    running = await start_services(settings, {"smtp"})
    port = settings.submission.listen.port
    try:
        plain, _ = await Wire.open(port)
        assert (await plain.command(b"EHLO ehr.test")).startswith("250")
        assert (await plain.command(MAIL)).startswith("530 5.7.0")  # TLS first, always
        await plain.close()

        wire = await tls_session(port, client_tls)
        assert (await wire.command(MAIL)).startswith("250")
        assert (await wire.command(b"RCPT TO:<patient@example.org>")).startswith("250")
        assert (await wire.command(b"DATA")).startswith("354")
        reply = await wire.data(b"From: reminders@practice.test\r\nSubject: hi\r\n\r\nok")
        assert reply.startswith("250 2.0.0 Queued"), reply
        # ...but not as anyone: the trusted network may use the practice's domain only.
        assert (await wire.command(b"MAIL FROM:<ceo@elsewhere.test>")).startswith("553")
        await wire.close()
    finally:
        await stop_services(running, grace=1)
