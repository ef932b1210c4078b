"""PostgreSQL goes away under a running relay: clients get ``451 4.3.0`` (never a 250 for
mail that was not stored, never a hang), and the relay takes mail again once the database
is back, without a restart. The test runs its own throwaway cluster so it can stop it."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator

import aiosmtplib
import psycopg
import pytest
from helpers.postgres import PostgresCluster, start_cluster

from phigate.config import Settings
from phigate.queue.db import make_engine, upgrade
from phigate.runtime import Runtime
from phigate.serve import start_services, stop_services

pytestmark = pytest.mark.postgres


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    started = start_cluster()
    if started is None:
        pytest.skip("PostgreSQL server binaries are not installed (.ci/run installs them)")
    try:
        yield started
    finally:
        started.stop()


def pg_ctl(cluster: PostgresCluster, *argv: str) -> None:
    command = [str(cluster.bindir / "pg_ctl"), "-w", "-D", str(cluster.directory / "data"),
               *argv]
    if cluster.run_as:
        command = ["runuser", "-u", cluster.run_as, "--", *command]
    subprocess.run(command, check=True, capture_output=True)


def stop_database(cluster: PostgresCluster) -> None:
    pg_ctl(cluster, "-m", "immediate", "stop")  # like a crash: no goodbye to clients


def start_database(cluster: PostgresCluster) -> None:
    pg_ctl(cluster, "-l", str(cluster.directory / "log"), "-o",
           f"-c listen_addresses=127.0.0.1 -c port={cluster.port} "
           f"-c unix_socket_directories={cluster.directory}", "start")


def message(token: str) -> bytes:
    return (f"From: ehr@practice.test\r\nTo: p@example.org\r\nSubject: pg\r\n\r\n"
            f"{token}\r\n").encode()


async def transaction(client: aiosmtplib.SMTP, token: str) -> tuple[int, str]:
    """The reply to the transaction: 250 and the queue reply, or the refusal, whether it
    came at MAIL, RCPT, DATA or the end of data."""
    try:
        _, reply = await client.sendmail("ehr@practice.test", ["p@example.org"],
                                         message(token))
        return 250, reply
    except aiosmtplib.SMTPRecipientsRefused as error:
        return error.recipients[0].code, error.recipients[0].message
    except aiosmtplib.SMTPResponseException as error:
        return error.code, error.message


async def send(port: int, tls: ssl.SSLContext, token: str) -> tuple[int, str]:
    """One session per message, as an EHR's sender typically does (AUTH included)."""
    try:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, tls_context=tls,
                                   start_tls=True, timeout=20) as client:
            await client.login("ehr", "pw")
            return await transaction(client, token)
    except aiosmtplib.SMTPResponseException as error:  # at AUTH
        return error.code, error.message


async def test_database_down_tempfails_then_recovers(
    cluster: PostgresCluster, make_settings: Callable[..., Settings],
    client_tls: ssl.SSLContext,
) -> None:
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres",
                         autocommit=True) as conn:
        conn.execute("CREATE DATABASE phigate")
    settings = make_settings(storage={"url": f"{cluster.server_url}/phigate"})
    engine = make_engine(settings.storage.url)
    upgrade(engine)
    engine.dispose()
    running = await start_services(settings, {"smtp"})
    running.runtime.accounts.add("ehr", "pw", senders=["practice.test"], classes=["treatment"])
    port = settings.submission.listen.port
    acknowledged: dict[str, str] = {}
    try:
        code, reply = await send(port, client_tls, "BEFORE")
        assert code == 250, reply
        acknowledged["BEFORE"] = reply.rsplit(" ", 1)[1]

        # Mid-transaction when the database dies: recipients accepted, then DATA.
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, tls_context=client_tls,
                                   start_tls=True, timeout=20) as client:
            await client.login("ehr", "pw")
            await client.mail("ehr@practice.test")
            await client.rcpt("p@example.org")
            await asyncio.to_thread(stop_database, cluster)
            started = time.monotonic()
            with pytest.raises(aiosmtplib.SMTPDataError) as refused:
                await client.data(message("DURING"))
            assert refused.value.code == 451, refused.value.message
            assert refused.value.message.startswith("4.3.0"), refused.value.message
            assert time.monotonic() - started < 15, "no fast tempfail: the client hung"
            # ...and the same session, next transaction (RCPT needs the database too).
            code, reply = await transaction(client, "DURING-2")
            assert code == 451 and reply.startswith("4.3.0"), (code, reply)

        # A new session while it is down: refused with a temporary error too, not 5xx.
        code, reply = await send(port, client_tls, "DOWN")
        assert code == 451 and reply.startswith("4.3.0"), (code, reply)

        await asyncio.to_thread(start_database, cluster)
        deadline = time.monotonic() + 20
        while True:  # a client retries on 4xx; the pool reconnects (pool_pre_ping)
            code, reply = await send(port, client_tls, "AFTER")
            if code == 250 or time.monotonic() > deadline:
                break
            assert code == 451, (code, reply)
            await asyncio.sleep(0.5)
        assert code == 250, reply
        acknowledged["AFTER"] = reply.rsplit(" ", 1)[1]
    finally:
        await stop_services(running, grace=1)

    runtime = Runtime.open(settings)
    try:
        for token, queue_id in acknowledged.items():
            assert token.encode() in runtime.store.read_body(queue_id)
    finally:
        runtime.close()
