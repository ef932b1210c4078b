"""SMTP smuggling and STARTTLS command injection, with the public vectors in shared/eval."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl

import pytest
from conftest import RelayHandle
from helpers.shared import EVAL

from phigate.queue.models import Message

VECTORS = EVAL / "smtp/smuggling-starttls-vectors"


def eod_vectors() -> list[str]:
    data = json.loads((VECTORS / "eod_sequences.json").read_text())
    found: set[str] = set()
    for key, value in data.items():
        if key.startswith("_"):
            continue
        found.update(value.values() if isinstance(value, dict) else value)
    return sorted(found)


async def read_reply(reader: asyncio.StreamReader) -> str:
    lines = []
    while True:
        line = (await asyncio.wait_for(reader.readline(), 5)).decode()
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return "".join(lines)


async def tls_session(relay: RelayHandle, client_tls: ssl.SSLContext
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    await read_reply(reader)
    writer.write(b"EHLO smuggler.test\r\n")
    await read_reply(reader)
    writer.write(b"STARTTLS\r\n")
    assert (await read_reply(reader)).startswith("220")
    await writer.start_tls(client_tls, server_hostname="127.0.0.1")
    writer.write(b"EHLO smuggler.test\r\n")
    await read_reply(reader)
    writer.write(b"AUTH PLAIN " + base64.b64encode(b"\0clinic\0correct horse") + b"\r\n")
    assert (await read_reply(reader)).startswith("235")
    return reader, writer


def count_messages(relay: RelayHandle) -> int:
    from sqlalchemy import func, select

    with relay.runtime.store.writing() as session:
        return int(session.scalar(select(func.count()).select_from(Message)) or 0)


@pytest.mark.skipif(not VECTORS.exists(), reason="shared/eval vectors not laid beside the repo")
@pytest.mark.parametrize("eod", eod_vectors() if VECTORS.exists() else [], ids=repr)
async def test_smuggled_end_of_data_never_yields_a_second_message(
    relay: RelayHandle, client_tls: ssl.SSLContext, eod: str
) -> None:
    reader, writer = await tls_session(relay, client_tls)
    writer.write(b"MAIL FROM:<reminders@practice.test>\r\n")
    assert (await read_reply(reader)).startswith("250")
    writer.write(b"RCPT TO:<patient@example.org>\r\n")
    assert (await read_reply(reader)).startswith("250")
    writer.write(b"DATA\r\n")
    assert (await read_reply(reader)).startswith("354")
    smuggled = (
        "From: reminders@practice.test\r\nTo: patient@example.org\r\nSubject: one\r\n\r\n"
        "first message" + eod +
        "MAIL FROM:<admin@practice.test>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
        "From: admin@practice.test\r\nSubject: smuggled\r\n\r\nsmuggled message\r\n.\r\n"
    )
    writer.write(smuggled.encode("latin-1"))
    replies = [await read_reply(reader)]
    # Anything the server still says (it must not be a second "Queued as").
    writer.write(b"QUIT\r\n")
    try:
        while True:
            replies.append(await read_reply(reader))
            if replies[-1].startswith("221") or not replies[-1]:
                break
    except (TimeoutError, ConnectionError):
        pass
    writer.close()
    queued = [r for r in replies if "Queued as" in r]
    assert len(queued) <= 1
    assert count_messages(relay) <= 1
    # Bare CR/LF/NUL are refused outright, so the smuggled text is not relayed onward either.
    assert replies[0].startswith("550 5.6.0")
    assert count_messages(relay) == 0


async def test_starttls_command_injection_is_discarded(
    relay: RelayHandle, client_tls: ssl.SSLContext
) -> None:
    probe = json.loads((VECTORS / "starttls_injection_probe.json").read_text())["smtp"]
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    await read_reply(reader)
    for chunk in probe["injection"]["pretls"]:
        writer.write(chunk.encode())
        if chunk.startswith("STARTTLS"):
            break
        await read_reply(reader)
    assert (await read_reply(reader)).startswith("220")
    await writer.start_tls(client_tls, server_hostname="127.0.0.1")
    # Safe: the server says nothing unsolicited after the handshake (the injected EHLO
    # was thrown away with the plaintext buffer).
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readline(), 0.5)
    writer.write(probe["injection"]["post_tls_command_if_silent"].encode())
    answer = await read_reply(reader)
    assert not answer.startswith("250")
    writer.close()


async def test_clean_message_after_a_refused_one_still_works(
    relay: RelayHandle, client_tls: ssl.SSLContext
) -> None:
    reader, writer = await tls_session(relay, client_tls)
    for body, expected in ((b"bad\nline\r\n", "550"), (b"good line\r\n", "250")):
        writer.write(b"MAIL FROM:<reminders@practice.test>\r\nRCPT TO:<p@example.org>\r\n")
        await read_reply(reader)
        await read_reply(reader)
        writer.write(b"DATA\r\n")
        await read_reply(reader)
        writer.write(b"From: reminders@practice.test\r\nSubject: x\r\n\r\n" + body + b".\r\n")
        assert (await read_reply(reader)).startswith(expected)
    writer.close()
    assert count_messages(relay) == 1
