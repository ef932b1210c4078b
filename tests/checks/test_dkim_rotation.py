"""DKIM rollover end to end: rotate, activate once DNS serves the new selector, retire; dkimpy
verifies mail signed with either selector against the local DNS server."""

from __future__ import annotations

import getpass
from pathlib import Path

import dkim
import dns.resolver
from helpers.dns_server import DnsServer
from sqlalchemy import select

from phigate.config import load_settings
from phigate.mta.delivery.dkim import DkimSigner, dns_record
from phigate.mta.delivery.dkim_rotation import effective_dkim, load_state
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
    settings = load_settings(config)
    engine = make_engine(settings.storage.url)
    try:
        signer = DkimSigner.from_settings(effective_dkim(settings.dkim, engine), DOMAIN)
    finally:
        engine.dispose()
    assert signer is not None
    return signer.sign(MESSAGE)


def _selector(signed: bytes) -> str:
    header = signed.split(b"\r\n\r\n")[0].decode()
    return header.split(" s=")[1].split(";")[0]


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
    assert _selector(after) == "s2027" and dkim.verify(after, dnsfunc=verify)
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
    assert _audit_actions(installation) == ["dkim.rotate", "dkim.activate", "dkim.retire"]


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
