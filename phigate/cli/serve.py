"""``phigate serve [--role all|smtp,delivery,http]``."""

from __future__ import annotations

import argparse
import asyncio

from phigate.checks.at_start import start_dns_checks
from phigate.cli.context import CliContext, SubParsers
from phigate.observability.logs import configure_logging
from phigate.serve import parse_roles, serve_forever


def register(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser("serve", help="run the relay (all roles by default)")
    parser.add_argument(
        "--role", default="all",
        help="all, or a comma-separated list of smtp, delivery, http (default: all)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    roles = parse_roles(args.role)
    settings = ctx.settings()
    configure_logging(settings.logging.level, settings.logging.format)
    if "delivery" in roles:
        start_dns_checks(settings)  # warnings only: `phigate check-config --dns` says more
    asyncio.run(serve_forever(settings, roles))
    return 0
