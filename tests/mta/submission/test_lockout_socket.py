"""Issue 14 item 5 over a real SMTP socket with real TLS: guesses for the EHR's account from
another address lock that address out, never the EHR's own client."""

from __future__ import annotations

import ssl

import aiosmtplib
import pytest
from conftest import RelayHandle

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
