"""REQUIRETLS (RFC 8689) at submission: offered only over TLS, stored with the message."""

from __future__ import annotations

import ssl

import aiosmtplib
from conftest import RelayHandle

from phigate.queue.models import Message

BODY = (b"From: reminders@practice.test\r\nTo: patient@example.org\r\n"
        b"Subject: Your appointment\r\n\r\nSee you on Tuesday.\r\n")


async def _client(relay: RelayHandle, client_tls: ssl.SSLContext) -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, tls_context=client_tls,
                             start_tls=False, timeout=10)
    await client.connect()
    return client


def _require_tls(relay: RelayHandle, message_id: str) -> bool:
    with relay.runtime.store.reading() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message.require_tls


async def test_requiretls_is_offered_after_starttls_and_stored(
        relay: RelayHandle, client_tls: ssl.SSLContext) -> None:
    client = await _client(relay, client_tls)
    await client.ehlo()
    assert not client.supports_extension("requiretls")  # not over plaintext
    await client.starttls()
    await client.ehlo()
    assert client.supports_extension("requiretls")
    await client.login("clinic", "correct horse")
    _, flagged = await client.sendmail("reminders@practice.test", ["patient@example.org"],
                                       BODY, mail_options=["REQUIRETLS"])
    _, plain = await client.sendmail("reminders@practice.test", ["patient@example.org"], BODY)
    await client.quit()
    assert _require_tls(relay, flagged.rsplit(" ", 1)[1]) is True
    assert _require_tls(relay, plain.rsplit(" ", 1)[1]) is False


async def test_requiretls_parameter_is_refused_without_tls(
        relay: RelayHandle, client_tls: ssl.SSLContext) -> None:
    # The plaintext stage cannot reach MAIL (STARTTLS is required), so ask aiosmtpd's
    # parser directly over the raw socket: REQUIRETLS is an unknown parameter there.
    client = await _client(relay, client_tls)
    await client.ehlo()
    code, _ = await client.execute_command(b"MAIL", b"FROM:<reminders@practice.test>",
                                           b"REQUIRETLS")
    await client.quit()
    assert code in (530, 555)  # never 250 over plaintext
