"""``phigate serve [--role all|smtp,delivery,http]``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from phigate.checks.at_start import start_dns_checks
from phigate.cli.context import CliContext, SubParsers
from phigate.observability.logs import configure_logging
from phigate.serve import parse_roles
from phigate.serve_child import (
    METRICS_FD_OPTION,
    SUPERVISED_BY_OPTION,
    WAKE_FD_OPTION,
    lower_priority,
)
from phigate.serve_main import serve_forever


def register(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser("serve", help="run the relay (all roles by default)")
    parser.add_argument(
        "--role", default="all",
        help="all, or a comma-separated list of smtp, delivery, http (default: all)",
    )
    # Given by serve to the delivery child it starts (phigate.serve_child), not by people.
    parser.add_argument(SUPERVISED_BY_OPTION, type=int, default=None, dest="supervised_by",
                        help=argparse.SUPPRESS)
    parser.add_argument(METRICS_FD_OPTION, type=int, default=None, dest="metrics_fd",
                        help=argparse.SUPPRESS)
    parser.add_argument(WAKE_FD_OPTION, type=int, default=None, dest="wake_fd",
                        help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    child = args.supervised_by is not None
    roles = parse_roles(args.role)
    settings = ctx.settings()
    if child:
        from phigate.lifeline import exit_with_parent

        # First, before any thread starts: a thread's niceness is its own on Linux, and
        # the threads it starts inherit it (the parent watcher below, the thread pools).
        lower_priority(settings.delivery.process_nice)
        exit_with_parent(args.supervised_by)  # no orphan after a kill -9 of serve
    configure_logging(settings.logging.level, settings.logging.format,
                      process=args.role if child else None)
    if "delivery" in roles and not child:  # the parent ran them for its child
        start_dns_checks(settings)  # warnings only: `phigate check-config --dns` says more
    command = [sys.executable, "-m", "phigate", "--config", os.path.abspath(ctx.config_path),
               "serve", "--role", "delivery"]
    asyncio.run(serve_forever(settings, roles, delivery_command=None if child else command,
                              metrics_fd=args.metrics_fd, wake_fd=args.wake_fd))
    return 0
