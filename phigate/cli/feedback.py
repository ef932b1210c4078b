"""``phigate feedback classify FILE.eml… [--json]``: how the feedback listener reads mail;
``phigate feedback incidents [list|clear DOMAIN] [--json]``: open bounce incidents.

With a configuration file, tokens are checked with ``[policy] token_key_file`` (so VERP
and unsubscribe addresses name their recipient) and reports are labelled with
``[server] hostname``; without one, tokens are ignored.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from phigate.cli.context import CliContext, SubParsers
from phigate.cli.files import read_message_files

if TYPE_CHECKING:
    from phigate.policy.tokens import TokenSigner


def register(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser("feedback", help="bounces, complaints and unsubscribes",
                                   description="Inspect feedback (bounce/complaint) messages.")
    commands = parser.add_subparsers(dest="feedback_command", metavar="COMMAND", required=True)
    classify = commands.add_parser(
        "classify", help="show how the feedback listener would read messages",
        description="Classify message files as bounce, complaint, unsubscribe or other.")
    classify.add_argument("files", nargs="+", type=Path, metavar="FILE.eml")
    classify.add_argument("--json", action="store_true",
                          help="one JSON object per file and line, with a \"file\" key")
    classify.add_argument("--envelope-recipient", metavar="ADDRESS",
                          help="the address the messages were delivered to (RCPT TO)")
    classify.add_argument("--no-dkim", action="store_true",
                          help="do not verify DKIM signatures of complaint reports (no DNS)")
    classify.set_defaults(handler=run_classify)
    incidents = commands.add_parser(
        "incidents", help="domains refusing our mail for a reason on our side",
        description="Open bounce incidents: destination domains that refused our mail for a "
                    "reason on our side (blocklisted IP, SPF/DKIM, reverse DNS, rejected "
                    "sender). Marketing mail to them waits; `clear DOMAIN` ends one.")
    incidents.add_argument("action", nargs="?", choices=("list", "clear"), default="list")
    incidents.add_argument("domain", nargs="?", help="for clear: the destination domain")
    incidents.add_argument("--json", action="store_true", help="one JSON array")
    incidents.set_defaults(handler=run_incidents)


def run_classify(args: argparse.Namespace, ctx: CliContext) -> int:
    from phigate.policy.token_registry import signer_for
    from phigate.queue.db import make_engine

    contents = read_message_files(args.files)
    signer = None
    engine = None
    authserv_id = "phigate"
    if ctx.has_config():
        settings = ctx.settings()
        authserv_id = settings.server.hostname
        if settings.policy.token_key_file:
            engine = make_engine(settings.storage.url)
            signer = signer_for(settings, engine)
    try:
        _print_reports(args, contents, signer, authserv_id)
    finally:
        if engine is not None:
            engine.dispose()
    return 0


def run_incidents(args: argparse.Namespace, ctx: CliContext) -> int:
    from phigate.admin.roles import Role
    from phigate.cli.policy_common import acting_admin, policy_stores, print_json_array
    from phigate.errors import UserError
    from phigate.policy.incidents import IncidentStore

    with policy_stores(ctx) as (runtime, stores):
        incidents = stores.incidents or IncidentStore.configured(
            runtime.engine, runtime.audit, runtime.settings.feedback)
        if args.action == "clear":
            if not args.domain:
                raise UserError("feedback incidents clear needs the DOMAIN")
            actor = acting_admin(runtime, "feedback incidents clear")
            if not incidents.resolve(args.domain, actor=actor, why="cleared by an admin"):
                print(f"phigate: no open incident for {args.domain}")
                return 1
            print(f"phigate: cleared the incident of {args.domain}; marketing mail resumes")
            return 0
        acting_admin(runtime, "feedback incidents", needed=Role.VIEWER)
        entries = incidents.entries()
    if args.json:
        print_json_array([entry.as_dict() for entry in entries])
        return 0
    for entry in entries:
        print(f"{entry.domain:32} {entry.reason:14} {entry.count:5}  "
              f"first {entry.first_seen:%Y-%m-%d %H:%M}  last {entry.last_seen:%Y-%m-%d %H:%M}"
              f"  marketing held until {entry.hold_until:%Y-%m-%d %H:%M}")
    return 0


def _print_reports(args: argparse.Namespace, contents: list[bytes],
                   signer: TokenSigner | None, authserv_id: str) -> None:
    from phigate.policy.feedback.classify import classify

    for path, raw in zip(args.files, contents, strict=True):
        report = classify(raw, signer=signer, envelope_recipient=args.envelope_recipient,
                          verify_dkim=not args.no_dkim, authserv_id=authserv_id)
        if args.json:
            print(json.dumps({"file": str(path), **report.to_json()}), flush=True)
            continue
        print(f"{path}: {report.kind}"
              + (f" ({report.feedback_type})" if report.feedback_type else ""))
        for recipient in report.recipients:
            detail = ", ".join(part for part in (
                ("permanent" if recipient.permanent else "temporary")
                if report.kind == "bounce" else "", recipient.category or "",
                recipient.status or "", recipient.reason or "") if part)
            print(f"  {recipient.address}" + (f": {detail}" if detail else ""))
        if report.token is not None:
            print(f"  token: {report.token.kind} for {report.token.recipient}")
        if report.authentication_results:
            print(f"  Authentication-Results: {report.authentication_results}")

