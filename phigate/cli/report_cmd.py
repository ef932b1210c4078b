"""``phigate report --month YYYY-MM --format html|pdf|json``: the monthly compliance report."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from phigate.admin.roles import Role
from phigate.cli.context import CliContext, SubParsers
from phigate.cli.policy_common import acting_admin
from phigate.errors import UserError
from phigate.runtime import Runtime


def register(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "report", help="the monthly compliance report (counts only, no PHI)",
        description="What a HIPAA compliance officer files for one month: messages by class "
                    "and PHI share, the TLS PHI left with, quarantines, suppressions, "
                    "campaign approvals, incidents, admin actions and PHI reveals, the audit "
                    "chain's verification and the retention runs. Counts only.")
    parser.add_argument("--month", required=True, metavar="YYYY-MM")
    parser.add_argument("--format", choices=("html", "pdf", "json"), default="html")
    parser.add_argument("--out", type=Path, help="write here instead of standard output")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    from phigate.report.collect import Month, collect
    from phigate.report.html import render_html, render_pdf

    try:
        month = Month.parse(args.month)
    except ValueError as error:
        raise UserError(f"--month: {error}") from None
    with Runtime.open(ctx.settings()) as runtime:
        actor = acting_admin(runtime, "report", needed=Role.VIEWER)
        report = collect(runtime.engine, month, generated_at=datetime.now(UTC),
                         audit=runtime.audit)
        runtime.audit.record(actor, "report.generate",
                             detail={"month": str(month), "format": args.format})
        installation = runtime.settings.server.hostname
    if args.format == "json":
        data = (json.dumps(report, indent=2) + "\n").encode()
    else:
        html = render_html(report, installation=installation)
        data = html.encode() if args.format == "html" else render_pdf(html)
    if args.out is not None:
        args.out.write_bytes(data)
        print(f"phigate: wrote the {month} report to {args.out}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0
