"""``phigate init``: a ready-to-run installation in one directory.

Writes the configuration, a self-signed certificate, a DKIM key, the master key and the token
key, creates the SQLite database, and prints the DNS records to publish. Existing files are
kept (running it twice never replaces a key), so it is also safe to re-run after an upgrade.
"""

from __future__ import annotations

import argparse
import os
import secrets
import stat
from datetime import UTC, datetime
from pathlib import Path

from phigate.audit.keys import generate_audit_key
from phigate.cli.context import CliContext, SubParsers
from phigate.cli.file_modes import GROUP_READABLE, create_private, sqlite_path, tighten
from phigate.cli.selfsigned import generate_self_signed
from phigate.config import load_settings
from phigate.errors import UserError
from phigate.mta.delivery.dkim import dns_record, generate_key
from phigate.queue.crypto import MasterKey
from phigate.queue.db import make_engine, upgrade
from phigate.queue.key_check import ensure_master_key


def register(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "init", help="create a ready-to-run configuration, keys and database in a directory"
    )
    parser.add_argument("--dir", type=Path, required=True, help="installation directory")
    parser.add_argument("--domain", required=True, help="the practice's mail domain")
    parser.add_argument("--hostname", help="this host's public name (default: mail.DOMAIN)")
    parser.add_argument("--selector", help="DKIM selector (default: phigateYYYYMM)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    domain = args.domain.strip().lower().rstrip(".")
    if "." not in domain or any(c.isspace() or c in "/@" for c in domain):
        raise UserError(f"--domain: not a mail domain: {args.domain!r}")
    hostname = (args.hostname or f"mail.{domain}").lower()
    selector = args.selector or f"phigate{datetime.now(UTC):%Y%m}"
    base: Path = args.dir.resolve()
    try:
        _make_private_dir(base)
        for sub in ("tls", "dkim", "keys"):
            _make_private_dir(base / sub)
    except OSError as error:
        raise UserError(f"cannot create {base}: {error.strerror}") from None

    cert, key = base / "tls" / "cert.pem", base / "tls" / "key.pem"
    if not (cert.exists() and key.exists()):
        cert_pem, key_pem = generate_self_signed(hostname)
        _write_secret(key, key_pem)
        _write_new(cert, cert_pem, GROUP_READABLE)
        _say(f"wrote a self-signed TLS certificate for {hostname}: {cert}")
    master, token_key, audit_key = _write_keys(base / "keys")
    config_path = base / "phigate.toml"
    if config_path.exists():
        _say(f"kept the existing configuration: {config_path}")
        settings = load_settings(config_path)
        selector = settings.dkim.selector or selector
        dkim_key = Path(settings.dkim.key_file) if settings.dkim.key_file else None
    else:
        dkim_key = base / "dkim" / f"{selector}.key"
        _write_new(config_path, _config_text(
            base, domain, hostname, selector, dkim_key, cert, key, master, token_key,
            audit_key).encode(),
            GROUP_READABLE)
        _say(f"wrote {config_path}")
        settings = load_settings(config_path)
    if dkim_key is not None and not dkim_key.exists():
        _write_secret(dkim_key, generate_key("rsa"))
        _say(f"wrote a 2048-bit RSA DKIM key: {dkim_key}")

    _create_database(settings.storage.url, MasterKey.load(settings.storage.master_key_file))
    _say(f"database ready: {settings.storage.url}")

    print()
    print("Publish these DNS records:")
    if dkim_key is not None:
        print(f'  {selector}._domainkey.{domain}. TXT "{dns_record(dkim_key.read_bytes())}"')
    print(f'  {domain}. TXT "v=spf1 mx a:{hostname} -all"   (add your other senders)')
    print(f'  _dmarc.{domain}. TXT "v=DMARC1; p=quarantine; adkim=s; aspf=r; '
          f'rua=mailto:dmarc-reports@{domain}"')
    print(f"  {hostname}. A/AAAA <this host's public address>, with a matching PTR record")
    print()
    print(f"Next: phigate --config {config_path} user add NAME   (then: serve)")
    return 0


def _config_text(
    base: Path, domain: str, hostname: str, selector: str, dkim_key: Path, cert: Path,
    key: Path, master: Path, token_key: Path, audit_key: Path,
) -> str:
    return f"""\
# phigate configuration, written by `phigate init` on {datetime.now(UTC):%Y-%m-%d}.
# Every key can be overridden by an environment variable PHIGATE_<SECTION>__<KEY>.

[server]
domain = "{domain}"
hostname = "{hostname}"
state_dir = "{base}"

[submission]
# Applications submit here: STARTTLS, then AUTH. Use 0.0.0.0:587 to serve the network.
listen = "127.0.0.1:587"
tls_cert = "{cert}"
tls_key = "{key}"
trusted_networks = []
max_message_size = 26214400

[storage]
url = "sqlite:///{base / 'phigate.db'}"
master_key_file = "{master}"

[http]
# One-click unsubscribe, /metrics and /healthz.
listen = "127.0.0.1:8025"
public_url = "https://{hostname}"

[feedback]
# Bounces, complaints and mailto unsubscribes come back here (point your MX for the
# bounce domain at it).
listen = "127.0.0.1:2526"
bounce_domain = "{domain}"

[delivery]
# smarthost = "smtp.example.net:587"   # absent: deliver to the recipients' MX hosts
tls_default = "opportunistic"
tls_phi = "verify"

[dkim]
selector = "{selector}"
key_file = "{dkim_key}"

[policy]
token_key_file = "{token_key}"
phi_allowed_domains = ["{domain}"]
# Required before marketing mail is accepted: shown in every marketing footer (CAN-SPAM).
postal_address = ""

[scanner]
action_treatment = "tag"
action_operations = "tag"
action_marketing = "quarantine"
""" + _audit_section(base, audit_key)


def _audit_section(base: Path, audit_key: Path) -> str:
    return f"""
[audit]
# HMAC key of the audit chain and seed of the checkpoint signature (keep it off the
# database host's backups, like the master key). Copy the checkpoint off this host too.
key_file = "{audit_key}"
checkpoint_file = "{base / 'audit.checkpoint'}"
"""


def _write_keys(keys: Path) -> tuple[Path, Path, Path]:
    """The master, token and audit keys (each only if missing: a key is never replaced)."""
    master, token_key, audit_key = keys / "master.key", keys / "token.key", keys / "audit.key"
    if not master.exists():
        MasterKey.generate().write(master)
        _say(f"wrote the master key (back it up separately from the database): {master}")
    if not token_key.exists():
        _write_secret(token_key, secrets.token_bytes(32))
    if not audit_key.exists():
        _write_secret(audit_key, generate_audit_key())
        _say(f"wrote the audit key (keep it with the master key): {audit_key}")
    return master, token_key, audit_key


def _make_private_dir(path: Path) -> None:
    path.mkdir(mode=0o750, parents=True, exist_ok=True)


def _write_secret(path: Path, content: bytes) -> None:
    _write_new(path, content, stat.S_IRUSR | stat.S_IWUSR)


def _write_new(path: Path, content: bytes, mode: int) -> None:
    # O_EXCL: never replace a key; the mode is given at creation, so no moment exists in
    # which the file is readable by others (a chmod afterwards would leave one).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as stream:
        stream.write(content)


def _create_database(url: str, master_key: MasterKey) -> None:
    """Migrate the database, creating a SQLite file as 0600 first: SQLite gives its -wal
    and -shm files the database's mode, and would otherwise create it 0644 under root.
    Then store the master key's check value (an existing one is kept, and a wrong key for
    an existing database is refused, see :mod:`phigate.queue.key_check`)."""
    database = sqlite_path(url)
    if database is not None:
        create_private(database)
    engine = make_engine(url)
    try:
        upgrade(engine)
        ensure_master_key(engine, master_key)
    finally:
        engine.dispose()
    if database is not None:
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            if path.exists():
                tighten(path)


def _say(text: str) -> None:
    print(f"phigate: {text}")
