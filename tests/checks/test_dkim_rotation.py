"""DKIM rollover end to end: rotate, activate once DNS serves the new selector, retire; dkimpy
verifies mail signed with either selector against the local DNS server."""

from __future__ import annotations

import getpass
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dkim
import dns.resolver
import pytest
from helpers.dns_server import DnsServer
from sqlalchemy import select

from phigate.config import load_settings
from phigate.mta.delivery.dkim import dns_record
from phigate.mta.delivery.dkim_keyring import DkimKeyring
from phigate.mta.delivery.dkim_rotation import load_state
from phigate.queue.db import make_engine
from phigate.queue.models import AuditEvent

from .conftest import DOMAIN, run, txt

MESSAGE = (b"From: Front Desk <desk@practice.test>\r\nTo: pat@example.org\r\n"
           b"Subject: Reminder\r\nMessage-ID: <r1@practice.test>\r\n\r\nSee you Tuesday.\r\n")


def _dnsfunc(server: DnsServer):
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = server.port

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        answer = resolver.resolve(name.decode().rstrip("."), "TXT")
        return b"".join(b"".join(r.strings) for r in answer)

    return lookup


def _signed(config: Path) -> bytes:
    """MESSAGE signed as a delivery that starts now would sign it."""
    settings = load_settings(config)
    engine = make_engine(settings.storage.url)
    try:
        keyring = DkimKeyring.from_settings(settings.dkim, DOMAIN, engine)
        assert keyring is not None
        return keyring.sign(MESSAGE)
    finally:
        engine.dispose()


def _selector(signed: bytes) -> str:
    """The selector of the topmost signature."""
    return _selectors(signed)[0]


def _selectors(signed: bytes) -> list[str]:
    header = signed.split(b"\r\n\r\n")[0].decode()
    return [part.split(";")[0] for part in header.split(" s=")[1:]]


def _all_verify(signed: bytes, dnsfunc: Callable[..., bytes]) -> bool:
    count = len(_selectors(signed))
    return all(dkim.DKIM(signed).verify(idx=i, dnsfunc=dnsfunc) for i in range(count))


def test_rotation_signs_with_the_new_selector_only_once_dns_serves_it(
        installation: Path, dns: DnsServer) -> None:
    with installation.open("a") as config:
        config.write(f'\n[admin]\noperators = ["{getpass.getuser()}"]\n')
    verify = _dnsfunc(dns)
    before = _signed(installation)
    assert _selector(before) == "s2026" and dkim.verify(before, dnsfunc=verify)

    rotated = run("--config", str(installation), "dkim", "rotate", "--domain", DOMAIN,
                  "--selector", "s2027")
    assert rotated.status == 0, rotated.err
    assert 's2027._domainkey.practice.test. TXT "v=DKIM1; k=rsa; p=' in rotated.out
    assert _selector(_signed(installation)) == "s2026"  # pending: the old key still signs

    waiting = run("--config", str(installation), "check-config", "--dns", "--ip", "192.0.2.10")
    assert waiting.status == 0 and "a rollover waits for this selector's record" in waiting.err
    early = run("--config", str(installation), "dkim", "activate", "--domain", DOMAIN)
    assert early.status == 1 and "does not serve the key of s2027" in early.err
    new_key = Path(load_state_of(installation).pending.key_file)
    dns.set(f"s2027._domainkey.{DOMAIN}", [("TXT", txt(dns_record(new_key.read_bytes())))])
    activated = run("--config", str(installation), "dkim", "activate", "--domain", DOMAIN)
    assert activated.status == 0, activated.err

    after = _signed(installation)
    # The overlap: the new key on top, the retiring one below, both verify.
    assert _selectors(after) == ["s2027", "s2026"] and _all_verify(after, verify)
    assert dkim.verify(before, dnsfunc=verify)  # the old selector is still published
    dns.set(f"s2026._domainkey.{DOMAIN}", [])  # check-config --dns checks the active key
    checked = run("--config", str(installation), "check-config", "--dns", "--ip", "192.0.2.10")
    assert (checked.status, checked.err) == (0, "")

    early_retire = run("--config", str(installation), "dkim", "retire", "--domain", DOMAIN)
    assert early_retire.status == 1 and "retire_after_days" in early_retire.err
    retired = run("--config", str(installation), "dkim", "retire", "--domain", DOMAIN,
                  "--force")
    assert retired.status == 0 and "s2026._domainkey.practice.test" in retired.out
    state = load_state_of(installation)
    assert (state.active.selector if state.active else None, state.retiring) == ("s2027", None)
    assert _selectors(_signed(installation)) == ["s2027"]
    assert _audit_actions(installation) == ["dkim.rotate", "dkim.activate", "dkim.retire"]


class Clock:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


def test_a_running_delivery_follows_the_rollover_without_a_restart(
        installation: Path, dns: DnsServer, caplog: pytest.LogCaptureFixture) -> None:
    with installation.open("a") as config:
        config.write(f'\n[admin]\noperators = ["{getpass.getuser()}"]\n')
    settings = load_settings(installation)
    engine = make_engine(settings.storage.url)
    clock = Clock()
    later = datetime.now(UTC)
    keyring = DkimKeyring(settings.dkim, DOMAIN, engine, refresh_seconds=60, clock=clock,
                          now=lambda: later)
    try:
        assert _selectors(keyring.sign(MESSAGE)) == ["s2026"]
        assert run("--config", str(installation), "dkim", "rotate", "--domain", DOMAIN,
                   "--selector", "s2027").status == 0
        assert run("--config", str(installation), "dkim", "activate", "--domain", DOMAIN,
                   "--force").status == 0
        clock.seconds = 59  # not yet looked again
        assert _selectors(keyring.sign(MESSAGE)) == ["s2026"]
        clock.seconds = 61
        signed = keyring.sign(MESSAGE)
        assert _selectors(signed) == ["s2027", "s2026"]
        new_key = Path(load_state_of(installation).active.key_file)
        dns.set(f"s2027._domainkey.{DOMAIN}", [("TXT", txt(dns_record(new_key.read_bytes())))])
        assert _all_verify(signed, _dnsfunc(dns))

        # retire_at passed: the old key stops signing, even before `dkim retire` runs.
        later += timedelta(days=settings.dkim.retire_after_days, seconds=1)
        clock.seconds = 122
        assert _selectors(keyring.sign(MESSAGE)) == ["s2027"]

        # A rollover this node cannot load (the new key file unreadable) keeps what works.
        assert run("--config", str(installation), "dkim", "rotate", "--domain", DOMAIN,
                   "--selector", "s2028").status == 0
        assert run("--config", str(installation), "dkim", "activate", "--domain", DOMAIN,
                   "--force").status == 0
        Path(load_state_of(installation).active.key_file).unlink()
        clock.seconds = 183
        caplog.set_level(logging.ERROR, logger="phigate.dkim")
        assert _selectors(keyring.sign(MESSAGE)) == ["s2027"]
        assert any(r.getMessage() == "dkim_keys_not_loaded" for r in caplog.records)
    finally:
        engine.dispose()


def test_activate_can_be_forced_and_is_audited_as_such(
        installation: Path, dns: DnsServer) -> None:
    with installation.open("a") as config:
        config.write(f'\n[admin]\noperators = ["{getpass.getuser()}"]\n')
    assert run("--config", str(installation), "dkim", "rotate", "--domain", DOMAIN).status == 0
    forced = run("--config", str(installation), "dkim", "activate", "--domain", DOMAIN,
                 "--force")
    assert forced.status == 0, forced.err
    status = run("--config", str(installation), "dkim", "status")
    assert status.out.startswith("active    phigate") and "retiring  s2026" in status.out


def load_state_of(config: Path):
    engine = make_engine(load_settings(config).storage.url)
    try:
        return load_state(engine)
    finally:
        engine.dispose()


def _audit_actions(config: Path) -> list[str]:
    engine = make_engine(load_settings(config).storage.url)
    try:
        with engine.connect() as connection:
            return [a for (a,) in connection.execute(
                select(AuditEvent.action).where(AuditEvent.action.like("dkim.%"))
                .order_by(AuditEvent.id))]
    finally:
        engine.dispose()
