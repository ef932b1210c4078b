"""``phigate feedback classify FILE.eml… [--json]``: how the feedback listener reads mail.

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


def _print_reports(args: argparse.Namespace, contents: list[bytes],
                   signer: TokenSigner | None, authserv_id: str) -> None:
    from phigate.policy.feedback import classify

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
                if report.kind == "bounce" else "",
                recipient.status or "", recipient.reason or "") if part)
            print(f"  {recipient.address}" + (f": {detail}" if detail else ""))
        if report.token is not None:
            print(f"  token: {report.token.kind} for {report.token.recipient}")
        if report.authentication_results:
            print(f"  Authentication-Results: {report.authentication_results}")

