"""The submission server over real loopback sockets with real TLS."""

from __future__ import annotations

import asyncio
import base64
import ssl
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from conftest import RelayHandle

from phigate.queue.models import MessageState
from phigate.runtime import Runtime


def make_message(token: str = "TOKEN-0", sender: str = "reminders@practice.test",
                 **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "patient@example.org"
    message["Subject"] = "Your appointment"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(f"See you on Tuesday. {token}\n")
    return message


async def connect(relay: RelayHandle, client_tls: ssl.SSLContext, *, login: bool = True
                  ) -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, tls_context=client_tls,
                             start_tls=False, timeout=10)
    await client.connect()
    await client.starttls()
    await client.ehlo()
    if login:
        await client.login("clinic", "correct horse")
    return client


async def raw_lines(reader: asyncio.StreamReader) -> str:
    """Read one (possibly multi-line) SMTP reply."""
    lines = []
    while True:
        line = (await asyncio.wait_for(reader.readline(), 5)).decode()
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return "".join(lines)


def queued_ids(runtime: Runtime) -> list[str]:
    from sqlalchemy import select

    from phigate.queue.models import Message

    with runtime.store.writing() as session:
        return list(session.scalars(select(Message.id)))


async def test_authenticated_tls_submission_is_queued_and_encrypted(
    relay: RelayHandle, client_tls: ssl.SSLContext
) -> None:
    token = "UNIQUE-BODY-TOKEN-7f3a9c"
    client = await connect(relay, client_tls)
    errors, reply = await client.send_message(make_message(token))
    await client.quit()
    assert errors == {}
    assert reply.startswith("2.0.0 Queued as ")
    message_id = reply.rsplit(" ", 1)[1]
    view = relay.runtime.store.get_message(message_id)
    assert view.state == MessageState.ACTIVE
    assert view.username == "clinic"
    assert [r.address for r in view.recipients] == ["patient@example.org"]
    body = relay.runtime.store.read_body(message_id)
    assert token.encode() in body
    assert body.startswith(b"Received: by relay.practice.test (phigate) with ESMTPSA")
    url = relay.settings.storage.url
    if url.startswith("sqlite"):
        database = Path(url.removeprefix("sqlite:///"))
        files = [database, database.with_name(database.name + "-wal")]
        raw = b"".join(path.read_bytes() for path in files if path.exists())
        assert len(raw) > 10_000
        assert token.encode() not in raw
        assert b"Your appointment" not in raw  # the subject is sealed with the body too


async def test_mail_and_auth_before_starttls_get_530(
    relay: RelayHandle, client_tls: ssl.SSLContext
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    assert (await raw_lines(reader)).startswith("220")
    writer.write(b"EHLO client.test\r\n")
    ehlo = await raw_lines(reader)
    assert "STARTTLS" in ehlo and "AUTH" not in ehlo  # no AUTH offered in clear
    for command in (b"AUTH PLAIN " + base64.b64encode(b"\0clinic\0correct horse"),
                    b"MAIL FROM:<reminders@practice.test>", b"DATA"):
        writer.write(command + b"\r\n")
        assert (await raw_lines(reader)).startswith("530 5.7.0")
    writer.close()
    assert queued_ids(relay.runtime) == []


async def test_mail_without_auth_is_refused_and_nothing_queued(
    relay: RelayHandle, client_tls: ssl.SSLContext
) -> None:
    client = await connect(relay, client_tls, login=False)
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        await client.sendmail("reminders@practice.test", ["patient@example.org"],
                              make_message().as_bytes())
    assert refused.value.code == 530
    await client.quit()
    assert queued_ids(relay.runtime) == []


async def test_wrong_password_535_then_lockout(
    relay: RelayHandle, client_tls: ssl.SSLContext
) -> None:
    failures = relay.settings.submission.auth_max_failures
    for _ in range(failures):
        client = await connect(relay, client_tls, login=False)
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as denied:
            await client.auth_plain("clinic", "wrong")
        assert denied.value.code == 535
        assert "5.7.8" in denied.value.message
        await client.quit()
    # Locked out now, even with the right password, and told to come back later.
    client = await connect(relay, client_tls, login=False)
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as locked:
        await client.auth_plain("clinic", "correct horse")
    assert locked.value.code == 454
    await client.quit()
    assert relay.running.submission.lockouts.lockouts_total >= 1


async def test_sender_not_allowed_553(relay: RelayHandle, client_tls: ssl.SSLContext) -> None:
    client = await connect(relay, client_tls)
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        await client.sendmail("ceo@elsewhere.test", ["patient@example.org"], b"x")
    assert refused.value.code == 553
    assert "5.7.1" in refused.value.message
    # The From: header is checked too, not only the envelope.
    message = make_message(sender="ceo@elsewhere.test")
    with pytest.raises(aiosmtplib.SMTPDataError) as data_refused:
        await client.send_message(message, sender="reminders@practice.test")
    assert data_refused.value.code == 553
    await client.quit()
    assert queued_ids(relay.runtime) == []


async def test_size_limit_552(relay_factory, client_tls: ssl.SSLContext) -> None:
    async with relay_factory(submission={"max_message_size": 10_000}) as running:
        settings = running.runtime.settings
        running.runtime.accounts.add("clinic", "pw", senders=["practice.test"],
                                     classes=["treatment"])
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=settings.submission.listen.port,
                                 tls_context=client_tls, start_tls=True, timeout=10)
        await client.connect()
        await client.login("clinic", "pw")
        message = make_message("x" * 20_000)
        with pytest.raises(aiosmtplib.SMTPResponseException) as too_big:
            await client.sendmail("a@practice.test", ["b@example.org"], message.as_bytes())
        assert too_big.value.code == 552
        assert "5.3.4" in too_big.value.message
        await client.quit()


async def test_too_many_recipients_452(relay: RelayHandle, client_tls: ssl.SSLContext) -> None:
    limit = relay.settings.submission.max_recipients
    client = await connect(relay, client_tls)
    await client.mail("reminders@practice.test")
    for index in range(limit):
        code, _ = await client.rcpt(f"p{index}@example.org")
        assert code == 250
    with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
        await client.rcpt("one-too-many@example.org")
    assert refused.value.code == 452
    await client.quit()


@pytest.mark.parametrize("address", [
    "victim%other.test@practice.test",  # the %-hack
    "other.test!victim@practice.test",  # a bang path
    "no-domain",
    "two@@example.org",
])
# A source route (<@relay.test:victim@other.test>) is not in this list: aiosmtpd strips the
# route as RFC 5321 section 3.6.1 asks, so it can only reach the final mailbox.
async def test_relay_tricks_in_recipients_are_refused(
    relay: RelayHandle, client_tls: ssl.SSLContext, address: str
) -> None:
    client = await connect(relay, client_tls)
    await client.mail("reminders@practice.test")
    code, _ = await client.execute_command(f"RCPT TO:<{address}>".encode())
    assert code >= 500
    await client.quit()


async def test_unknown_class_header_refused(relay: RelayHandle, client_tls: ssl.SSLContext
                                            ) -> None:
    client = await connect(relay, client_tls)
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await client.send_message(make_message(X_Phigate_Class="spam"))
    assert refused.value.code == 550
    assert "5.7.1" in refused.value.message
    await client.quit()


async def test_sessions_per_ip_limited(relay_factory) -> None:
    async with relay_factory(submission={"max_sessions_per_ip": 2}) as running:
        port = running.runtime.settings.submission.listen.port
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        for reader, _ in held:
            assert (await raw_lines(reader)).startswith("220")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await raw_lines(reader)).startswith("421 4.7.0")
        writer.close()
        for _, held_writer in held:
            held_writer.close()


async def test_implicit_tls_listener(relay_factory, client_tls: ssl.SSLContext) -> None:
    from helpers.net import free_port

    port = free_port()
    async with relay_factory(submission={"implicit_tls_listen": f"127.0.0.1:{port}"}) as running:
        running.runtime.accounts.add("clinic", "pw", senders=["practice.test"],
                                     classes=["treatment"])
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, use_tls=True,
                                   tls_context=client_tls, timeout=10) as client:
            await client.login("clinic", "pw")
            _, reply = await client.send_message(make_message("IMPLICIT"))
        assert reply.startswith("2.0.0 Queued as")


async def test_per_user_submission_rate(relay_factory, client_tls: ssl.SSLContext) -> None:
    async with relay_factory(submission={"rate_per_minute_per_user": 3}) as running:
        running.runtime.accounts.add("clinic", "pw", senders=["practice.test"],
                                     classes=["treatment"])
        port = running.runtime.settings.submission.listen.port
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, tls_context=client_tls,
                                   start_tls=True, timeout=10) as client:
            await client.login("clinic", "pw")
            for index in range(3):
                await client.send_message(make_message(f"RATE-{index}"))
            with pytest.raises(aiosmtplib.SMTPSenderRefused) as slowed:
                await client.send_message(make_message("RATE-4"))
        assert slowed.value.code == 451
        assert "4.7.1" in slowed.value.message
