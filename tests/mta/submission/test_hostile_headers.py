"""Issue 14's hostile headers over real sockets: refused at DATA, before 250, with one line;
the relay keeps answering other clients and /healthz while it refuses; client trace and
authentication fields never reach the next hop."""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import aiosmtplib
import pytest
from helpers.tls_sink import TlsSink
from helpers.wait import wait_until

ALLOWED = "reminders@practice.test"
#: How long another client may wait for its banner, or /healthz for its answer, while the
#: relay refuses a hostile message (the issue measured stalls of 3.9 s to minutes). The
#: sending client runs on the same loop and the machine is shared, so not 0.1 s.
PROMPT_SECONDS = 2.0


@asynccontextmanager
async def hostile_relay(relay_factory: Callable[..., Any], **sections: Any
                        ) -> AsyncIterator[Any]:
    async with relay_factory(("smtp", "http"), **sections) as running:
        running.runtime.accounts.add("app", "pw", senders=[ALLOWED], classes=["treatment"])
        yield running


async def submit(running: Any, client_tls: ssl.SSLContext, content: bytes) -> tuple[int, str]:
    """The reply to DATA (or to the first command that refused)."""
    port = running.runtime.settings.submission.listen.port
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, tls_context=client_tls,
                               start_tls=True, timeout=120) as client:
        await client.login("app", "pw")
        try:
            _, reply = await client.sendmail(ALLOWED, ["patient@example.org"], content)
        except aiosmtplib.SMTPResponseException as error:
            return error.code, error.message
        return 250, reply


def queued(running: Any) -> int:
    return sum(running.runtime.store.count_messages().values())


def message(*lines: str | bytes, body: bytes = b"\r\nSee you on Tuesday.\r\n") -> bytes:
    encoded = [line if isinstance(line, bytes) else line.encode() for line in lines]
    return b"".join(line + b"\r\n" for line in encoded) + body


async def probe(running: Any, client_tls: ssl.SSLContext) -> tuple[float, float]:
    """Seconds until a new client's banner, and until /healthz answers 200."""
    settings = running.runtime.settings
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", settings.submission.listen.port)
    banner = await asyncio.wait_for(reader.readline(), 30)
    banner_seconds = time.monotonic() - started
    writer.close()
    assert banner.startswith(b"220 ")
    started = time.monotonic()
    async with aiohttp.ClientSession() as http, http.get(
        f"http://127.0.0.1:{settings.http.listen.port}/healthz",
        timeout=aiohttp.ClientTimeout(total=30),
    ) as response:
        assert response.status == 200
    return banner_seconds, time.monotonic() - started


async def refused_while_others_are_served(
    running: Any, client_tls: ssl.SSLContext, content: bytes
) -> tuple[int, str]:
    """Submit ``content``; while the relay reads and refuses it, probe the others."""
    hostile = asyncio.create_task(submit(running, client_tls, content))
    probes = []
    while not hostile.done():
        probes.append(await probe(running, client_tls))
        await asyncio.sleep(0.05)
    code, reply = await hostile
    probes.append(await probe(running, client_tls))
    worst = max(max(pair) for pair in probes)
    assert worst < PROMPT_SECONDS, f"another client waited {worst:.2f} s"
    return code, reply


# -- spoofed originators ----------------------------------------------------------------

SPOOFS = [
    (f"From: {ALLOWED} <ceo@practice.test>", "550 5.6.0"),
    ("From: <evil@x.example> <reminders@practice.test>", "550 5.6.0"),
    ("From: (reminders@practice.test) <ceo@practice.test>", "550 5.6.0"),
    ("From: ceo@practice.test", "553 5.7.1"),
]


@pytest.mark.parametrize(("from_line", "expected"), SPOOFS)
async def test_a_spoofed_from_gets_no_250(
    relay_factory: Callable[..., Any], client_tls: ssl.SSLContext, from_line: str, expected: str
) -> None:
    async with hostile_relay(relay_factory) as running:
        code, reply = await submit(running, client_tls,
                                   message(from_line, "To: patient@example.org"))
        assert f"{code} {reply}".startswith(expected)
        assert "\n" not in reply.strip()
        assert queued(running) == 0


@pytest.mark.parametrize(("extra", "expected"), [
    ("From : ceo@practice.test", "550 5.6.0 Message refused: more than one From: field"),
    (" From: ceo@practice.test", "550 5.6.0 Message refused: more than one From: field"),
    ("Sender: ceo@practice.test", "553 5.7.1 Sender:"),
    ("Reply-To: ceo@practice.test", "553 5.7.1 Reply-To:"),
    ("Resent-From: ceo@practice.test", "553 5.7.1 Resent-From:"),
])
async def test_second_from_and_unchecked_originators_are_refused(
    relay_factory: Callable[..., Any], client_tls: ssl.SSLContext, extra: str, expected: str
) -> None:
    async with hostile_relay(relay_factory) as running:
        code, reply = await submit(running, client_tls,
                                   message(f"From: {ALLOWED}", "Subject: hi", extra))
        assert f"{code} {reply}".startswith(expected)
        assert queued(running) == 0


async def test_an_mbox_from_line_is_refused(
    relay_factory: Callable[..., Any], client_tls: ssl.SSLContext
) -> None:
    async with hostile_relay(relay_factory) as running:
        content = message("From ceo@practice.test Wed Dec  2 06:00:00 2026", f"From: {ALLOWED}")
        assert await submit(running, client_tls, content) == (
            550, "5.6.0 Message refused: mbox 'From ' line in the header")


# -- the five malformed shapes that used to get 250 and then park corrupt ---------------

MALFORMED = [
    (message(f"From: {ALLOWED}", "To: patient@example.org", "Subject: hi", "Dear patient,",
             "see you on Tuesday.", body=b""), "no blank line between the header and the body"),
    (message(f"From: {ALLOWED}", b"X-\xe9t\xe9: 1"), "header field name not allowed"),
    (message(f"From: {ALLOWED}", "X Bad: 1"), "header field name not allowed"),
    (message(f"From\t: {ALLOWED}", "To: patient@example.org"), "white space before the colon"),
    (message(f"From: {ALLOWED}", "this is not a header", "To: patient@example.org"),
     "a line in the header block is not a header field"),
]


@pytest.mark.parametrize(("content", "why"), MALFORMED)
async def test_the_five_malformed_shapes_are_refused_before_250(
    relay_factory: Callable[..., Any], client_tls: ssl.SSLContext, content: bytes, why: str
) -> None:
    async with hostile_relay(relay_factory) as running:
        code, reply = await submit(running, client_tls, content)
        assert code == 550 and reply.startswith("5.6.0 Message refused: ")
        assert why in reply
        assert queued(running) == 0


# -- messages that froze the relay ------------------------------------------------------

def folded_display_name(size: int = 64 * 1024) -> bytes:
    folded = "\r\n ".join("a." * 38 for _ in range(size // 78 + 1))
    return message(f"From: {folded} <{ALLOWED}>", "To: patient@example.org")


def many_addresses(count: int) -> bytes:
    """``count`` addresses in one To:, folded (SMTP lines stay under 1,000 bytes)."""
    addresses = ",\r\n ".join(f"user{i}@example.org" for i in range(count))
    return message(f"From: {ALLOWED}", f"To: {addresses}")


async def test_a_64_kb_folded_display_name_is_refused_and_nobody_waits(
    relay_factory: Callable[..., Any], client_tls: ssl.SSLContext
) -> None:
    async with hostile_relay(relay_factory) as running:
        code, reply = await refused_while_others_are_served(
            running, client_tls, folded_display_name())
        assert (code, reply) == (552, "5.3.4 Message refused: a header field is too long")
        assert queued(running) == 0


@pytest.mark.parametrize("count", [16_000, pytest.param(200_000, marks=pytest.mark.slow)])
async def test_thousands_of_addresses_are_refused_and_nobody_waits(
    relay_factory: Callable[..., Any], client_tls: ssl.SSLContext, count: int
) -> None:
    async with hostile_relay(relay_factory) as running:
        code, reply = await refused_while_others_are_served(
            running, client_tls, many_addresses(count))
        assert code == 552 and reply.startswith("5.3.4 Message refused: header")
        assert queued(running) == 0


async def test_the_address_count_is_bounded_within_the_field_length(
    relay_factory: Callable[..., Any], client_tls: ssl.SSLContext
) -> None:
    async with hostile_relay(relay_factory) as running:
        addresses = ",\r\n ".join(f"u{i}@e.x" for i in range(1_500))
        assert await submit(running, client_tls, message(f"From: {ALLOWED}", f"To: {addresses}")
                            ) == (554, "5.6.0 Message refused: too many addresses in one "
                                       "header field")


# -- what reaches the next hop ----------------------------------------------------------

CLIENT_MESSAGE = message(
    "Received: from laptop.internal (10.1.2.3) by mx.internal", "  with ESMTP; today",
    f"From: Reminders <{ALLOWED}>", "Bcc: secret@example.org",
    "DKIM-Signature: v=1; a=rsa-sha256; d=practice.test;", "\tb=forged",
    "Authentication-Results: mx.internal; dkim=pass", "To: patient@example.org",
    "Subject: Your appointment", "Message-ID: <m1@practice.test>",
    "Date: Wed, 02 Dec 2026 10:00:00 +0000",
)
AT_SINK = message(
    f"From: Reminders <{ALLOWED}>", "To: patient@example.org",
    "Subject: Your appointment", "Message-ID: <m1@practice.test>",
    "Date: Wed, 02 Dec 2026 10:00:00 +0000",
)


async def test_client_bcc_trace_and_authentication_fields_never_reach_the_sink(
    relay_factory: Callable[..., Any], client_tls: ssl.SSLContext, tls_sink: TlsSink,
) -> None:
    sink = tls_sink.sink
    async with relay_factory(("smtp", "delivery"), delivery=tls_sink.delivery()) as running:
        running.runtime.accounts.add("app", "pw", senders=[ALLOWED], classes=["treatment"])
        code, _ = await submit(running, client_tls, CLIENT_MESSAGE)
        assert code == 250
        await wait_until(lambda: sink.messages, what="the delivery")
    (received,) = sink.messages
    assert received.rcpt_tos == ("patient@example.org",)  # Bcc never named a recipient
    first, rest = received.content.split(b"\r\n", 1)
    assert re.fullmatch(rb"Received: by relay\.practice\.test \(phigate\) with ESMTPSA; .+",
                        first)
    assert rest == AT_SINK
