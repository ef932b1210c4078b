"""``phigate audit``: verify the hash chain, list entries (``--json``: one array)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from phigate.admin.durations import parse_since
from phigate.admin.service import open_service
from phigate.cli.context import CliContext, SubParsers
from phigate.clock import utcnow
from phigate.errors import UserError


def register(subparsers: SubParsers) -> None:
    audit = subparsers.add_parser("audit", help="the tamper-evident audit log")
    commands = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    verify = commands.add_parser("verify", help="walk the hash chain; exit 1 at the first break")
    verify.set_defaults(handler=run_verify)
    key = commands.add_parser("key", help="print the checkpoint public key, or create a key "
                                          "file (--new FILE) for [audit] key_file")
    key.add_argument("--new", type=Path, metavar="FILE", help="write a new audit key (0600)")
    key.set_defaults(handler=run_key)

    listing = commands.add_parser("list", help="entries, newest first")
    listing.add_argument("--since", help="a duration back from now (1h, 2d) or an ISO time")
    listing.add_argument("--actor", help="OS user")
    listing.add_argument("--action", help="e.g. queue.hold, action.denied, message.reveal")
    listing.add_argument("--message", dest="message_id", metavar="ID", help="message id")
    listing.add_argument("--limit", type=int, default=1000)
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    listing.set_defaults(handler=run_list)


def run_verify(args: argparse.Namespace, ctx: CliContext) -> int:
    service, close = open_service(ctx.settings())
    try:
        report = service.verify_audit()
    finally:
        close()
    if report.broken is not None:
        print(f"audit log BROKEN at entry {report.broken.entry_id}: {report.broken.problem} "
              f"({report.checked} entries before it verified)")
        return 1
    start = "a retention anchor" if report.anchored else "the beginning"
    print(f"audit log OK: {report.checked} entries verified from {start}")
    if report.keyed:
        print(f"  {report.keyed} HMAC-keyed (the rest plain SHA-256, from before the key)")
    else:
        print("  warning: no entry is HMAC-keyed; set [audit] key_file (phigate audit key)")
    if report.checkpoint is not None:
        print(f"  signed checkpoint at entry {report.checkpoint.index} "
              f"({report.checkpoint.at}) matches")
    print(f"  {report.records_checked} approvals and consents match their audit entries"
          + (f"; {report.unsealed} consents predate the seals" if report.unsealed else ""))
    return 0


def run_key(args: argparse.Namespace, ctx: CliContext) -> int:
    from phigate.audit.keys import AuditKey, generate_audit_key
    from phigate.cli.file_modes import PRIVATE

    if args.new is not None:
        try:
            fd = os.open(args.new, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
        except FileExistsError:
            raise UserError(f"{args.new} exists: an audit key is never replaced") from None
        with os.fdopen(fd, "wb") as stream:
            stream.write(generate_audit_key())
        print(f"phigate: wrote {args.new}; set [audit] key_file to it")
        path = args.new
    else:
        settings = ctx.settings()
        if not settings.audit.key_file:
            raise UserError("no [audit] key_file configured (create one with --new FILE)")
        path = Path(settings.audit.key_file)
    print(f"checkpoint public key (Ed25519): {AuditKey.load(path).public_hex}")
    return 0


def run_list(args: argparse.Namespace, ctx: CliContext) -> int:
    since = parse_since(args.since, utcnow()) if args.since else None
    service, close = open_service(ctx.settings())
    try:
        entries = service.audit_entries(since=since, actor=args.actor, action=args.action,
                                        message_id=args.message_id, limit=args.limit)
    finally:
        close()
    if args.json:
        print(json.dumps(entries))
        return 0
    for e in entries:
        where = f" from {e['actor_ip']}" if e["actor_ip"] else ""
        target = f" {e['message_id']}" if e["message_id"] else ""
        detail = json.dumps(e["detail"], sort_keys=True) if e["detail"] else ""
        print(f"{e['id']:>7} {e['at'][:19]} {e['actor']}{where} {e['action']}{target} {detail}")
    return 0
