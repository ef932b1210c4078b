"""``phigate suppress add|remove|list|lift``: the scoped suppression list."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from phigate.admin.roles import Role
from phigate.cli.context import CliContext, SubParsers
from phigate.cli.policy_common import acting_admin, policy_stores, print_json_array
from phigate.cli.table import write_table
from phigate.policy.suppression import SCOPES
from phigate.policy.suppression_lift import bounce_suppressions, lift


def register(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser("suppress", help="suppression list (unsubscribes, bounces)")
    sub = parser.add_subparsers(dest="suppress_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="stop mail to an address (marketing only, or all mail)")
    add.add_argument("address")
    add.add_argument("--scope", choices=SCOPES, required=True,
                     help="marketing: no marketing, reminders still go; all: nothing at all")
    add.add_argument("--reason", required=True, help="why (shown in the list and audit log)")
    add.set_defaults(handler=run_add)
    remove = sub.add_parser("remove", help="lift an address's suppression")
    remove.add_argument("address")
    remove.add_argument("--scope", choices=SCOPES, help="only this scope (default: every one)")
    remove.set_defaults(handler=run_remove)
    listing = sub.add_parser("list", help="list suppressed addresses")
    listing.add_argument("--scope", choices=SCOPES)
    listing.add_argument("--json", action="store_true", help="one JSON array")
    listing.set_defaults(handler=run_list)
    lifting = sub.add_parser("lift", help="lift the suppressions bounces created in a window "
                             "(never complaints, unsubscribes or an admin's entries)")
    lifting.add_argument("--source", choices=("bounce",), required=True)
    lifting.add_argument("--since", required=True, type=_when, help="ISO time, UTC if bare")
    lifting.add_argument("--until", type=_when, help="ISO time, UTC if bare (default: now)")
    lifting.add_argument("--domain", help="only addresses at this domain")
    lifting.add_argument("--category", help="only bounces of this reason (e.g. blocked)")
    lifting.add_argument("--yes", action="store_true", help="lift them (default: only list)")
    lifting.add_argument("--json", action="store_true", help="one JSON array of what matched")
    lifting.set_defaults(handler=run_lift)


def run_add(args: argparse.Namespace, ctx: CliContext) -> int:
    with policy_stores(ctx) as (runtime, stores):
        actor = acting_admin(runtime, "suppress add")
        result = stores.suppressions.add(args.address, args.scope, kind="manual",
                                         reason=args.reason, source=f"cli:{actor.name}",
                                         actor=actor)
    if not result.added:
        print(f"phigate: {args.address} is already suppressed ({args.scope} or all)")
        return 0
    cancelled = len(result.cancelled_messages)
    print(f"phigate: suppressed {args.address} for {args.scope} mail"
          + (f"; cancelled its queued copies in {cancelled} message(s)" if cancelled else ""))
    return 0


def run_remove(args: argparse.Namespace, ctx: CliContext) -> int:
    with policy_stores(ctx) as (runtime, stores):
        actor = acting_admin(runtime, "suppress remove")
        removed = stores.suppressions.remove(args.address, actor=actor, scope=args.scope)
    if not removed:
        print(f"phigate: {args.address} was not suppressed")
        return 1
    print(f"phigate: removed {removed} suppression(s) of {args.address}")
    return 0


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {text!r}") from error
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def run_lift(args: argparse.Namespace, ctx: CliContext) -> int:
    with policy_stores(ctx) as (runtime, _):
        actor = acting_admin(runtime, "suppress lift")
        entries = bounce_suppressions(runtime.engine, since=args.since, until=args.until,
                                      domain=args.domain, category=args.category)
        lifted = lift(runtime.engine, runtime.audit, entries, actor=actor) if args.yes else 0
    if args.json:
        print_json_array([entry.as_dict() | {"lifted": bool(args.yes)} for entry in entries])
    else:
        for entry in entries:
            print(f"{entry.address:40} {entry.scope:9} {entry.kind:12} "
                  f"{entry.created_at:%Y-%m-%d %H:%M}  {entry.reason}")
    if args.yes:
        print(f"phigate: lifted {lifted} bounce suppression(s)", file=sys.stderr)
    else:
        print(f"phigate: {len(entries)} bounce suppression(s) would be lifted; "
              "run again with --yes to lift them", file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace, ctx: CliContext) -> int:
    with policy_stores(ctx) as (runtime, stores):
        acting_admin(runtime, "suppress list", needed=Role.VIEWER)
        entries = stores.suppressions.entries(scope=args.scope)
    if args.json:
        print_json_array([entry.as_dict() for entry in entries])
        return 0
    write_table(sys.stdout, ("ADDRESS", "SCOPE", "KIND", "SINCE", "REASON"),
                ([entry.address, str(entry.scope), str(entry.kind),
                  f"{entry.created_at:%Y-%m-%d %H:%M}", entry.reason or "-"]
                 for entry in entries))
    return 0
