"""Issue 14 item 5 over a real SMTP socket with real TLS: guesses for the EHR's account from
another address lock that address out, never the EHR's own client; each kind of lockout
moves its own series on /metrics."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import aiohttp
import aiosmtplib
import pytest
from conftest import RelayHandle
from observability.test_http_metrics import sample

from phigate.mta.submission.auth import lockout_tracker


async def login(relay: RelayHandle, client_tls: ssl.SSLContext, source: str, password: str
                ) -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, tls_context=client_tls,
                             start_tls=False, timeout=10, source_address=(source, 0))
    await client.connect()
    await client.starttls()
    await client.ehlo()
    try:
        await client.auth_plain("ehr", password)
    except aiosmtplib.SMTPAuthenticationError:
        await client.quit()
        raise
    return client


async def test_five_wrong_guesses_from_elsewhere_do_not_lock_the_ehr_out(
    relay: RelayHandle, client_tls: ssl.SSLContext
) -> None:
    relay.runtime.accounts.add("ehr", "ehr secret", senders=["practice.test"],
                               classes=["treatment"])
    assert relay.settings.submission.auth_max_failures == 5
    for _ in range(5):
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as denied:
            await login(relay, client_tls, "127.0.0.2", "guess")
        assert denied.value.code == 535
    # The guessing address is locked out now, even with the right password...
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as locked:
        await login(relay, client_tls, "127.0.0.2", "ehr secret")
    assert locked.value.code == 454
    # ...and the EHR, from its own address, logs in and sends.
    client = await login(relay, client_tls, "127.0.0.1", "ehr secret")
    errors, reply = await client.sendmail(
        "reminders@practice.test", ["patient@example.org"],
        b"From: reminders@practice.test\r\nTo: patient@example.org\r\nSubject: Visit\r\n"
        b"\r\nSee you on Tuesday.\r\n")
    await client.quit()
    assert errors == {} and reply.startswith("2.0.0 Queued as ")
    # The lockout is in the database, where `phigate user lockouts` and the TUI read it.
    lockouts, _ = lockout_tracker(relay.settings, relay.runtime.engine).current()
    assert [(lock.user, lock.client_ip) for lock in lockouts] == [("ehr", "127.0.0.2")]


async def test_an_unlock_from_another_process_lets_the_address_in_again(
    relay: RelayHandle, client_tls: ssl.SSLContext
) -> None:
    relay.runtime.accounts.add("ehr", "ehr secret", senders=["practice.test"],
                               classes=["treatment"])
    for _ in range(5):
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await login(relay, client_tls, "127.0.0.2", "guess")
    from phigate.runtime import Runtime

    with Runtime.open(relay.settings) as admin:  # the CLI's engine, not the server's
        assert lockout_tracker(relay.settings, admin.engine).unlock("ehr") == 1
    client = await login(relay, client_tls, "127.0.0.2", "ehr secret")
    await client.quit()


async def test_each_kind_of_lockout_moves_its_own_series_on_metrics(
    relay_factory: Callable[..., Any], client_tls: ssl.SSLContext
) -> None:
    """``kind="user_ip"`` counts the (name, address) pairs refused, ``kind="user"`` the names
    slowed by the tarpit: each moves once, when its threshold is crossed (the metric used to
    count only a per-user lockout that no longer exists, and stayed at 0)."""
    async with relay_factory(("smtp", "http"), submission={
            "auth_max_failures": 3, "auth_tarpit_failures": 4}) as running:
        running.runtime.accounts.add("ehr", "ehr secret", senders=["practice.test"],
                                     classes=["treatment"])
        handle = RelayHandle(running.runtime.settings, running.runtime, running)
        url = f"http://127.0.0.1:{running.runtime.settings.http.listen.port}/metrics"

        async def lockouts() -> tuple[float, float]:
            async with aiohttp.ClientSession() as http, http.get(url) as response:
                text = await response.text()
            return (sample(text, "phigate_auth_lockouts_total", kind="user_ip"),
                    sample(text, "phigate_auth_lockouts_total", kind="user"))

        async def guess(source: str) -> int:
            with pytest.raises(aiosmtplib.SMTPAuthenticationError) as denied:
                await login(handle, client_tls, source, "guess")
            return denied.value.code

        pair, name = await lockouts()  # the registry is the process's: count from here
        assert [await guess("127.0.0.2") for _ in range(3)] == [535, 535, 535]
        assert await lockouts() == (pair + 1, name)  # 127.0.0.2 is refused for ehr now
        assert await guess("127.0.0.2") == 454  # a refused attempt starts nothing more
        assert await lockouts() == (pair + 1, name)
        assert await guess("127.0.0.3") == 535  # the name's fourth failure: the tarpit
        assert await lockouts() == (pair + 1, name + 1)
        client = await login(handle, client_tls, "127.0.0.1", "ehr secret")  # never refused
        await client.quit()
        assert await lockouts() == (pair + 1, name + 1)
