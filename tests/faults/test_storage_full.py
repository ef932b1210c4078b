"""The SQLite queue on a filesystem that fills up: clients get ``452 4.3.1``, nothing that
was acknowledged is lost, and the relay takes mail again as soon as there is room."""

from __future__ import annotations

import os
import sqlite3
import ssl
from collections.abc import Callable
from pathlib import Path

import aiosmtplib
from sqlalchemy import func, select

from faults.conftest import remount
from phigate.config import Settings
from phigate.queue.db import make_engine, upgrade
from phigate.queue.models import Message
from phigate.runtime import Runtime
from phigate.serve import start_services, stop_services

BODY_BYTES = 120_000  # incompressible (random), so the tmpfs fills in a few dozen messages


def message(index: int) -> bytes:
    filler = os.urandom(BODY_BYTES // 2).hex()
    lines = [filler[i:i + 76] for i in range(0, len(filler), 76)]
    return (f"From: ehr@practice.test\r\nTo: p@example.org\r\nSubject: fill {index}\r\n\r\n"
            f"TOKEN-{index:04d}\r\n" + "\r\n".join(lines) + "\r\n").encode()


async def send(client: aiosmtplib.SMTP, index: int) -> tuple[int, str]:
    try:
        _, reply = await client.sendmail("ehr@practice.test", ["p@example.org"], message(index))
        return 250, reply
    except aiosmtplib.SMTPResponseException as error:
        return error.code, error.message


async def test_full_disk_tempfails_keeps_acknowledged_mail_and_recovers(
    make_settings: Callable[..., Settings], tiny_fs: Path, client_tls: ssl.SSLContext
) -> None:
    database = tiny_fs / "queue.db"
    settings = make_settings(storage={"url": f"sqlite:///{database}"})
    engine = make_engine(settings.storage.url)
    upgrade(engine)
    engine.dispose()
    running = await start_services(settings, {"smtp"})
    running.runtime.accounts.add("ehr", "pw", senders=["practice.test"], classes=["treatment"])
    acknowledged: dict[int, str] = {}
    refusals: list[str] = []
    try:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=settings.submission.listen.port,
                                   tls_context=client_tls, start_tls=True,
                                   timeout=30) as client:
            await client.login("ehr", "pw")
            index = 0
            while len(refusals) < 3 and index < 200:
                code, reply = await send(client, index)
                if code == 250:
                    acknowledged[index] = reply.rsplit(" ", 1)[1]
                else:
                    refusals.append(f"{code} {reply}")
                index += 1
            assert acknowledged and refusals, "the filesystem never filled up"
            assert all(r.startswith("452 4.3.1") for r in refusals), refusals

            # Room again: the very next message is taken, on the same session.
            remount(tiny_fs, "64m")
            code, reply = await send(client, index)
            assert code == 250, reply
            acknowledged[index] = reply.rsplit(" ", 1)[1]
    finally:
        await stop_services(running, grace=1)

    # After the relay stopped, from the files alone: intact, every acknowledged message is
    # there and readable, and nothing half-written from the refused ones.
    with sqlite3.connect(database) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    runtime = Runtime.open(settings)
    try:
        for token, queue_id in acknowledged.items():
            assert f"TOKEN-{token:04d}".encode() in runtime.store.read_body(queue_id)
        with runtime.store.writing() as session:
            assert session.scalar(select(func.count()).select_from(Message)) == len(acknowledged)
    finally:
        runtime.close()
