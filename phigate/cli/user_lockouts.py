"""``phigate user lockouts`` and ``phigate user unlock NAME [--ip ADDRESS]``.

Lockouts live in the database (see :mod:`phigate.mta.submission.auth`), so this process
sees and clears the ones every ``serve`` process and node keeps. An unlock is audited.
"""

from __future__ import annotations

import argparse
import sys

from phigate.admin.service import unlock_audited
from phigate.audit.log import Actor
from phigate.cli.context import CliContext, SubParsers
from phigate.cli.table import write_table
from phigate.mta.submission.auth import lockout_tracker
from phigate.runtime import Runtime


def register(sub: SubParsers) -> None:
    lockouts = sub.add_parser("lockouts", help="show the user names refused or slowed now")
    lockouts.set_defaults(handler=run_lockouts)
    unlock = sub.add_parser("unlock", help="clear a user's lockouts (audited)")
    unlock.add_argument("name")
    unlock.add_argument("--ip", help="only from this client address (default: all, and the "
                                     "name's tarpit)")
    unlock.set_defaults(handler=run_unlock)


def run_lockouts(args: argparse.Namespace, ctx: CliContext) -> int:
    settings = ctx.settings()
    with Runtime.open(settings) as runtime:
        lockouts, tarpits = lockout_tracker(settings, runtime.engine).current()
    if not lockouts and not tarpits:
        print("phigate: no lockouts")
        return 0
    rows = [[lock.user, lock.client_ip, "locked out",
             f"until {lock.locked_until:%Y-%m-%d %H:%M:%S} UTC (lockout {lock.lockouts})"]
            for lock in lockouts]
    rows += [[tarpit.user, "(every address)", "slowed",
              f"{tarpit.failures} failures, last {tarpit.last_failure_at:%Y-%m-%d %H:%M} UTC"]
             for tarpit in tarpits]
    write_table(sys.stdout, ("USER", "CLIENT", "STATE", "DETAIL"), rows)
    return 0


def run_unlock(args: argparse.Namespace, ctx: CliContext) -> int:
    settings = ctx.settings()
    with Runtime.open(settings) as runtime:
        cleared = unlock_audited(lockout_tracker(settings, runtime.engine), runtime.audit,
                                 Actor.from_environment(), args.name, args.ip)
    where = f" from {args.ip}" if args.ip else ""
    print(f"phigate: unlocked user {args.name}{where} ({cleared} lockout(s) cleared)")
    return 0
