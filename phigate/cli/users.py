"""``phigate user add|set|list|remove``: submission accounts (``lockouts`` and ``unlock``:
see :mod:`phigate.cli.user_lockouts`)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from phigate.accounts.store import MESSAGE_CLASSES, Account, parse_list
from phigate.audit.log import Actor
from phigate.cli import user_lockouts
from phigate.cli.context import CliContext, SubParsers
from phigate.cli.table import write_table
from phigate.errors import UserError
from phigate.runtime import Runtime


def register(subparsers: SubParsers) -> None:
    user = subparsers.add_parser("user", help="submission accounts")
    sub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="add an account (password from stdin when not a terminal)")
    add.add_argument("name")
    add.add_argument("--classes", default="treatment",
                     help=f"comma-separated message classes, first is the default "
                          f"({', '.join(MESSAGE_CLASSES)}; default: treatment)")
    add.add_argument("--senders",
                     help="comma-separated addresses or domains it may send as "
                          "(default: the [server] domain)")
    add.add_argument("--reply-to", help=_REPLY_TO_HELP)
    add.set_defaults(handler=run_add)
    change = sub.add_parser("set", help="change an account's senders, classes or Reply-To")
    change.add_argument("name")
    change.add_argument("--classes", help="comma-separated message classes, first is the "
                                          "default")
    change.add_argument("--senders", help="comma-separated addresses or domains it may send "
                                          "as")
    change.add_argument("--reply-to", help=_REPLY_TO_HELP + "; '' for none")
    change.set_defaults(handler=run_set)
    listing = sub.add_parser("list", help="list accounts")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=run_list)
    remove = sub.add_parser("remove", help="remove an account")
    remove.add_argument("name")
    remove.set_defaults(handler=run_remove)
    user_lockouts.register(sub)


_REPLY_TO_HELP = ("comma-separated addresses or domains Reply-To: may name besides the "
                  "senders (e.g. the front desk's shared mailbox)")


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Again: "):
            raise UserError("the passwords do not match")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def run_add(args: argparse.Namespace, ctx: CliContext) -> int:
    runtime = Runtime.open(ctx.settings())
    try:
        senders = parse_list(args.senders) or [runtime.settings.server.domain]
        classes = parse_list(args.classes)
        account = runtime.accounts.add(args.name, _read_password(), senders=senders,
                                       classes=classes, reply_to=parse_list(args.reply_to))
        runtime.audit.record(Actor.from_environment(), "user.add",
                             detail={"user": account.name, "classes": list(account.classes),
                                     "senders": list(account.senders),
                                     "reply_to": list(account.reply_to)})
    finally:
        runtime.close()
    print(f"phigate: added user {account.name} ({_describe(account)})")
    return 0


def run_set(args: argparse.Namespace, ctx: CliContext) -> int:
    changes = {key: parse_list(value) for key, value in
               (("senders", args.senders), ("classes", args.classes),
                ("reply_to", args.reply_to)) if value is not None}
    if not changes:
        raise UserError("nothing to change: give --senders, --classes or --reply-to")
    runtime = Runtime.open(ctx.settings())
    try:
        account = runtime.accounts.update(args.name, **changes)
        runtime.audit.record(Actor.from_environment(), "user.set",
                             detail={"user": account.name, **changes})
    finally:
        runtime.close()
    print(f"phigate: changed user {account.name} ({_describe(account)})")
    return 0


def _describe(account: Account) -> str:
    return (f"classes: {', '.join(account.classes)}; senders: {', '.join(account.senders)}; "
            f"reply-to: {', '.join(account.reply_to) or 'senders only'}")


def run_list(args: argparse.Namespace, ctx: CliContext) -> int:
    runtime = Runtime.open(ctx.settings())
    try:
        accounts = runtime.accounts.list()
    finally:
        runtime.close()
    if args.json:
        print(json.dumps([{"name": a.name, "senders": list(a.senders), "classes": list(a.classes),
                           "reply_to": list(a.reply_to), "disabled": a.disabled}
                          for a in accounts], indent=2))
        return 0
    write_table(sys.stdout, ("USER", "CLASSES", "SENDERS", "REPLY-TO"),
                ([account.name, ",".join(account.classes), ",".join(account.senders) or "-",
                  ",".join(account.reply_to) or "-"] for account in accounts))
    return 0


def run_remove(args: argparse.Namespace, ctx: CliContext) -> int:
    runtime = Runtime.open(ctx.settings())
    try:
        runtime.accounts.remove(args.name)
        runtime.audit.record(Actor.from_environment(), "user.remove", detail={"user": args.name})
    finally:
        runtime.close()
    print(f"phigate: removed user {args.name}")
    return 0
