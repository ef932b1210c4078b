"""``phigate consent grant|revoke|list|import``: the consent registry."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from phigate.admin.roles import Role
from phigate.cli.context import CliContext, SubParsers
from phigate.cli.policy_common import acting_admin, policy_stores, print_json_array
from phigate.cli.table import write_table
from phigate.errors import UserError
from phigate.policy.consent import PURPOSES, ConsentChange, parse_consent_csv, parse_expiry


def register(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser("consent", help="consent registry (marketing, PHI by email)")
    sub = parser.add_subparsers(dest="consent_command", metavar="ACTION", required=True)
    for action in ("grant", "revoke"):
        command = sub.add_parser(action, help=f"{action} a consent for an address")
        command.add_argument("address")
        command.add_argument("--purpose", choices=PURPOSES, required=True)
        command.add_argument("--source", default="cli",
                             help="where it came from (form, phone, portal, EHR export)")
        command.add_argument("--evidence", help="form id, IP address, document reference")
        command.add_argument("--patient-id", help="the patient's id in the EHR")
        if action == "grant":
            command.add_argument("--expires", metavar="DATE",
                                 help="expiry of a HIPAA authorization (ISO date)")
            command.add_argument("--paid", action="store_true",
                                 help="the marketing is a paid communication")
        command.set_defaults(handler=run_change, action=action)
    listing = sub.add_parser("list", help="list consents")
    listing.add_argument("--purpose", choices=PURPOSES)
    listing.add_argument("--address")
    listing.add_argument("--all", action="store_true", help="include revoked consents")
    listing.add_argument("--json", action="store_true", help="one JSON array")
    listing.set_defaults(handler=run_list)
    importing = sub.add_parser(
        "import", help="import grants/revocations from a CSV file (all rows or none)",
        description="Columns: address,purpose[,action,source,evidence,patient_id,expires,paid]")
    importing.add_argument("file", type=Path, metavar="FILE.csv")
    importing.set_defaults(handler=run_import)


def run_change(args: argparse.Namespace, ctx: CliContext) -> int:
    change = ConsentChange(
        address=args.address, purpose=args.purpose, action=args.action, source=args.source,
        evidence=args.evidence, patient_id=args.patient_id,
        expires_at=parse_expiry(getattr(args, "expires", None)),
        paid=bool(getattr(args, "paid", False)),
    )
    with policy_stores(ctx) as (runtime, stores):
        actor = acting_admin(runtime, f"consent {args.action}")
        cancelled = stores.consents.apply(change, actor=actor)
    verb = "granted" if args.action == "grant" else "revoked"
    print(f"phigate: {verb} {args.purpose} for {args.address.strip().lower()}"
          + (f"; cancelled queued copies in {len(cancelled)} message(s)" if cancelled else ""))
    return 0


def run_list(args: argparse.Namespace, ctx: CliContext) -> int:
    with policy_stores(ctx) as (runtime, stores):
        acting_admin(runtime, "consent list", needed=Role.VIEWER)
        entries = stores.consents.entries(purpose=args.purpose, address=args.address,
                                          include_revoked=args.all)
    if args.json:
        print_json_array([entry.as_dict() for entry in entries])
        return 0
    rows = []
    for entry in entries:
        state = "granted" if entry.granted else "revoked"
        expiry = f" until {entry.expires_at:%Y-%m-%d}" if entry.expires_at else ""
        rows.append([entry.address, str(entry.purpose), state + expiry, entry.source or "-"])
    write_table(sys.stdout, ("ADDRESS", "PURPOSE", "STATE", "SOURCE"), rows)
    return 0


def run_import(args: argparse.Namespace, ctx: CliContext) -> int:
    try:
        text = args.file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{args.file}: no such file") from None
    except UnicodeDecodeError:
        raise UserError(f"{args.file}: not UTF-8 text") from None
    except OSError as error:
        raise UserError(f"{args.file}: cannot read ({error.strerror})") from None
    # Every row is checked before anything is written, and the rows are written in one
    # transaction: a bad row leaves the registry exactly as it was.
    changes = parse_consent_csv(text, name=str(args.file))
    with policy_stores(ctx) as (runtime, stores):
        actor = acting_admin(runtime, "consent import")
        count = stores.consents.import_changes(changes, actor=actor, origin=args.file.name)
    print(f"phigate: imported {count} consent change(s) from {args.file}")
    return 0
