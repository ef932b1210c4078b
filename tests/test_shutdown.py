"""``serve``'s shutdown with a delivery that hangs: one grace period, and the hung
delivery's leases are given back (they used to stay until they ran out: the outer 30 s
timeout cancelled delivery's own shutdown before it released them)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

import pytest
from helpers.net import free_port
from helpers.smtp_sink import SmtpSink, Stall
from helpers.wait import wait_until
from sqlalchemy import text

from phigate.observability.logs import FIELDS_ATTR
from phigate.queue.db import make_engine, upgrade
from phigate.queue.store import NewMessage
from phigate.serve import RunningServices, start_services, stop_services

BODY = b"From: ehr@practice.test\r\nSubject: hi\r\n\r\nok\r\n"
#: What a session still open when the grace period ends reads, on the wire.
SHUTTING_DOWN = b"421 4.3.2 Service shutting down, try again later\r\n"


async def test_shutdown_with_a_hung_delivery_releases_its_leases(
    make_settings: Callable[..., Any], caplog: pytest.LogCaptureFixture,
) -> None:
    sink = SmtpSink(free_port(), tls_context=None).start()
    sink.script("DATA", Stall(60.0))  # hangs far beyond every timeout below
    try:
        settings = make_settings(delivery={
            "smarthost": f"127.0.0.1:{sink.port}", "tls_default": "opportunistic",
            "poll_interval_seconds": 0.05, "shutdown_timeout_seconds": 1.0})
        engine = make_engine(settings.storage.url)
        upgrade(engine)
        engine.dispose()
        running = await start_services(settings, {"delivery"})
        store = running.runtime.store
        message_id = store.enqueue(NewMessage(sender="ehr@practice.test",
                                              recipients=["jane@example.org"], body=BODY))
        await wait_until(lambda: ("DATA", "") in sink.commands, what="DATA sent")
        [recipient] = store.get_message(message_id).recipients

        with caplog.at_level(logging.INFO, logger="phigate"):
            await stop_services(running)  # one grace period: the configured 1 s

        engine = make_engine(settings.storage.url)
        try:
            with engine.connect() as connection:
                lease = connection.execute(
                    text("SELECT lease_owner, lease_until FROM recipients WHERE id = :id"),
                    {"id": recipient.id}).one()
        finally:
            engine.dispose()
        assert tuple(lease) == (None, None)
        stopped = [getattr(r, FIELDS_ATTR) for r in caplog.records
                   if r.getMessage() == "delivery_stopped"]
        assert stopped and stopped[-1]["released"] == 1
        assert sink.messages == []
    finally:
        sink.stop()


@pytest.mark.parametrize("starttls", [False, True], ids=["plain", "after-starttls"])
async def test_a_session_still_open_when_the_grace_period_ends_is_told_421(
    make_settings: Callable[..., Any], caplog: pytest.LogCaptureFixture,
    client_tls: ssl.SSLContext, starttls: bool,
) -> None:
    settings, running = await _smtp_role(make_settings)
    reader, writer = await asyncio.open_connection("127.0.0.1", settings.submission.listen.port)
    try:
        assert (await reader.readline()).startswith(b"220 ")
        await _ehlo(reader, writer)
        if starttls:
            writer.write(b"STARTTLS\r\n")
            assert (await reader.readline()).startswith(b"220 ")
            await writer.start_tls(client_tls, server_hostname="localhost")
            await _ehlo(reader, writer)
        # The client now idles; serve stops and its grace period runs out.
        with caplog.at_level(logging.INFO, logger="phigate"):
            await stop_services(running)
        assert await asyncio.wait_for(reader.readline(), 5) == SHUTTING_DOWN
        assert await asyncio.wait_for(reader.read(), 5) == b""  # and closed
    finally:
        writer.close()
    assert _closed_at_shutdown(caplog) == [{"sessions": 1}]


async def test_a_feedback_session_still_open_at_the_end_is_told_421_too(
    make_settings: Callable[..., Any], caplog: pytest.LogCaptureFixture,
) -> None:
    # A receiving MTA reporting a bounce: cut off silently it cannot tell a shutdown from
    # a fault; a 421 says "try later" (RFC 5321 4.2.2), and no report was taken.
    settings, running = await _smtp_role(make_settings)
    reader, writer = await asyncio.open_connection("127.0.0.1", settings.feedback.listen.port)
    submission_reader, submission_writer = await asyncio.open_connection(
        "127.0.0.1", settings.submission.listen.port)
    try:
        assert (await reader.readline()).startswith(b"220 ")
        await _ehlo(reader, writer)
        writer.write(b"MAIL FROM:<>\r\n")
        assert (await reader.readline()).startswith(b"250 ")
        assert (await submission_reader.readline()).startswith(b"220 ")
        with caplog.at_level(logging.INFO, logger="phigate"):
            await stop_services(running)
        assert await asyncio.wait_for(reader.readline(), 5) == SHUTTING_DOWN
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert await asyncio.wait_for(submission_reader.readline(), 5) == SHUTTING_DOWN
    finally:
        writer.close()
        submission_writer.close()
    assert _closed_at_shutdown(caplog) == [{"sessions": 2}]  # both listeners' sessions, one line


async def _smtp_role(make_settings: Callable[..., Any]) -> tuple[Any, RunningServices]:
    """serve's smtp role (the submission and feedback listeners), a 0.5 s grace period."""
    settings = make_settings(delivery={"shutdown_timeout_seconds": 0.5})
    engine = make_engine(settings.storage.url)
    upgrade(engine)
    engine.dispose()
    return settings, await start_services(settings, {"smtp"})


def _closed_at_shutdown(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [getattr(r, FIELDS_ATTR) for r in caplog.records
            if r.getMessage() == "sessions_closed_at_shutdown"]


async def _ehlo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"EHLO client.example\r\n")
    while not (line := await reader.readline()).startswith(b"250 "):
        assert line.startswith(b"250-")
