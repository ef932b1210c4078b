"""TLS below 1.2 is refused on both submission listeners (STARTTLS and implicit TLS)."""

from __future__ import annotations

import asyncio
import ssl
import warnings

import pytest
import trustme
from conftest import RelayHandle
from fuzz.wire import Wire

from phigate.config import HostPort


def client_context(test_ca: trustme.CA, maximum: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that is willing to speak old TLS: the refusal must come from the server."""
    context = ssl.create_default_context()
    test_ca.configure_trust(context)
    with warnings.catch_warnings():
        # Python deprecates TLS 1.0/1.1 in client contexts: that is the point of the test.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = maximum
    # OpenSSL's default security level forbids TLS < 1.2 on the client side; lower it so the
    # client really offers the old protocol.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


async def starttls_handshake(port: int, context: ssl.SSLContext) -> str:
    """The negotiated TLS version after STARTTLS, or raises ssl.SSLError."""
    wire, _ = await Wire.open(port)
    try:
        assert (await wire.command(b"EHLO old.test")).startswith("250")
        assert (await wire.command(b"STARTTLS")).startswith("220")
        await asyncio.wait_for(wire.starttls(context), 10)
        ssl_object = wire.writer.get_extra_info("ssl_object")
        assert (await wire.command(b"EHLO old.test")).startswith("250")
        return str(ssl_object.version())
    finally:
        await wire.close()


async def implicit_handshake(port: int, context: ssl.SSLContext) -> str:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"), 10)
    try:
        greeting = await asyncio.wait_for(reader.readline(), 10)
        assert greeting.startswith(b"220")
        return str(writer.get_extra_info("ssl_object").version())
    finally:
        writer.close()


OLD = [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1]


@pytest.mark.parametrize("maximum", OLD, ids=lambda v: v.name)
async def test_starttls_below_1_2_fails_the_handshake(
    relay: RelayHandle, test_ca: trustme.CA, maximum: ssl.TLSVersion
) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await starttls_handshake(relay.port, client_context(test_ca, maximum))


@pytest.mark.parametrize("maximum", OLD, ids=lambda v: v.name)
async def test_implicit_tls_below_1_2_fails_the_handshake(
    relay: RelayHandle, test_ca: trustme.CA, maximum: ssl.TLSVersion
) -> None:
    port = HostPort.parse(relay.settings.submission.implicit_tls_listen, key="x").port
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await implicit_handshake(port, client_context(test_ca, maximum))


async def test_the_same_client_gets_through_with_1_2_and_1_3(
    relay: RelayHandle, test_ca: trustme.CA
) -> None:
    """The control: the lowered client context works once it may use TLS 1.2 or 1.3."""
    port = HostPort.parse(relay.settings.submission.implicit_tls_listen, key="x").port
    assert await starttls_handshake(
        relay.port, client_context(test_ca, ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"
    assert await starttls_handshake(
        relay.port, client_context(test_ca, ssl.TLSVersion.TLSv1_3)) == "TLSv1.3"
    assert await implicit_handshake(
        port, client_context(test_ca, ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"


async def test_relay_still_serves_after_failed_handshakes(
    relay: RelayHandle, test_ca: trustme.CA, client_tls: ssl.SSLContext
) -> None:
    for _ in range(3):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await starttls_handshake(relay.port,
                                     client_context(test_ca, ssl.TLSVersion.TLSv1_1))
    wire, _ = await Wire.open(relay.port)
    await wire.login(client_tls, "clinic", "correct horse")
    assert (await wire.command(b"MAIL FROM:<reminders@practice.test>")).startswith("250")
    await wire.close()
