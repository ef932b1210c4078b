"""``phigate tls check DOMAIN [--json]``: MX, MTA-STS, TLSA/DNSSEC and a live STARTTLS probe."""

from __future__ import annotations

import argparse
import asyncio
import json

from phigate.cli.context import CliContext, SubParsers


def register(subparsers: SubParsers) -> None:
    tls = subparsers.add_parser("tls", help="outbound TLS: what delivery would do")
    tls_sub = tls.add_subparsers(dest="tls_command", metavar="ACTION", required=True)
    check = tls_sub.add_parser("check", help="MX hosts, MTA-STS, TLSA and a live STARTTLS "
                               "probe of a destination domain")
    check.add_argument("domain")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace, ctx: CliContext) -> int:
    from phigate.mta.delivery.tls_check import check_domain, render_text

    settings = ctx.settings()
    report = asyncio.run(check_domain(settings.delivery, args.domain,
                                      local_hostname=settings.server.hostname))
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(render_text(report))
    return 1 if report.error else 0
