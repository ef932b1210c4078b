"""``phigate check-config`` and ``phigate db upgrade|status``."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from sqlalchemy.exc import SQLAlchemyError

from phigate.checks.dns_checks import dns_findings
from phigate.checks.findings import Finding, report, warning
from phigate.checks.lookup import Dns
from phigate.checks.offline import offline_findings
from phigate.checks.scanner_check import load_scanner
from phigate.cli.audit_key_check import check_audit_key
from phigate.cli.context import CliContext, SubParsers
from phigate.cli.file_modes import loose_files
from phigate.config import Settings, validate
from phigate.queue.crypto import MasterKey
from phigate.queue.db import current_revision, head_revision, make_engine, upgrade
from phigate.queue.key_check import KeyCheck, verify_master_key


def register(subparsers: SubParsers) -> None:
    check = subparsers.add_parser(
        "check-config", help="validate the configuration and the files it names, then exit"
    )
    check.add_argument("--dns", action="store_true",
                       help="also check the published DNS records (SPF, DKIM, DMARC, PTR, "
                            "MTA-STS, TLS-RPT) through [delivery] dns_servers")
    check.add_argument("--ip", action="append", metavar="ADDRESS",
                       help="this host's outbound public address (default: the A/AAAA "
                            "records of [server] hostname); repeatable")
    check.set_defaults(handler=run_check)
    db = subparsers.add_parser("db", help="database schema: status, upgrade")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_sub.add_parser("status", help="show the schema revision").set_defaults(handler=run_status)
    db_sub.add_parser("upgrade", help="apply pending migrations").set_defaults(
        handler=run_upgrade
    )


def run_check(args: argparse.Namespace, ctx: CliContext) -> int:
    settings = ctx.settings()
    validate(settings)
    key_state = _check_master_key(settings)
    check_audit_key(settings)
    load_scanner(settings.scanner)  # the model and the lexicons, as a worker loads them
    if key_state is not None:
        print(f"phigate: warning: {key_state}", file=sys.stderr)
    for loose in loose_files(settings, ctx.config_path):
        print(f"phigate: warning: {loose.warning()}", file=sys.stderr)
    findings = offline_findings(settings)
    if args.dns:
        findings += _dns_checks(settings, args.ip)
    status = report(findings, sys.stderr)
    if status:
        print(f"phigate: configuration has errors: {ctx.config_path}", file=sys.stderr)
        return status
    print(f"phigate: configuration OK: {ctx.config_path}"
          + (f" ({len(findings)} warning(s))" if findings else ""))
    print(_dane_state(settings))
    return 0


def _check_master_key(settings: Settings) -> str | None:
    """Raise for a wrong master key (the value stored at init does not unseal); a warning
    when it cannot be checked yet."""
    key = MasterKey.load(settings.storage.master_key_file)
    engine = make_engine(settings.storage.url)
    try:
        if current_revision(engine) is None:
            return "the database has no schema yet: the master key is checked once it has"
        if verify_master_key(engine, key) is KeyCheck.UNRECORDED:
            return ("no key-check value is stored yet (a database from before it existed): "
                    "`phigate serve` records it at its next start")
    except SQLAlchemyError as error:
        return f"cannot read the database to check the master key ({type(error).__name__})"
    finally:
        engine.dispose()
    return None


def _dane_state(settings: Settings) -> str:
    """DANE needs a validating resolver; without one it is off (said, not an error)."""
    if settings.delivery.dnssec_resolver:
        return (f"phigate: DANE on: TLSA records validated by "
                f"{settings.delivery.dnssec_resolver} ([delivery] dnssec_resolver)")
    return ("phigate: DANE off: no DNSSEC-validating resolver ([delivery] dnssec_resolver); "
            "MTA-STS and the TLS levels still apply")


def _dns_checks(settings: Settings, ips: list[str] | None) -> list[Finding]:
    """The DNS findings for the key that signs now (a rollover's active key), and a word
    on a rollover waiting for its record."""
    from phigate.mta.delivery.dkim_rotation import effective_dkim, load_state

    dns = Dns(settings.delivery.dns_servers, timeout=settings.policy.dns_timeout_seconds)
    engine = make_engine(settings.storage.url)
    try:
        signing = dataclasses.replace(settings, dkim=effective_dkim(settings.dkim, engine))
        pending = load_state(engine).pending if settings.dkim.key_file else None
    except SQLAlchemyError:  # no database yet: check the configured key
        signing, pending = settings, None
    finally:
        engine.dispose()
    findings = dns_findings(signing, dns, ips)
    if pending is not None:
        findings.append(warning(f"[dkim] selector {pending.selector}", "a rollover waits for "
                                "this selector's record", "publish it, then run `phigate dkim "
                                "activate --domain DOMAIN`"))
    return findings


def run_status(args: argparse.Namespace, ctx: CliContext) -> int:
    engine = make_engine(ctx.settings().storage.url)
    try:
        current, head = current_revision(engine), head_revision()
    finally:
        engine.dispose()
    state = "up to date" if current == head else "behind: run `phigate db upgrade`"
    print(f"schema {current or 'empty'} (code expects {head}): {state}")
    return 0 if current == head else 1


def run_upgrade(args: argparse.Namespace, ctx: CliContext) -> int:
    engine = make_engine(ctx.settings().storage.url)
    try:
        upgrade(engine)
        print(f"phigate: schema at {current_revision(engine)}")
    finally:
        engine.dispose()
    return 0
