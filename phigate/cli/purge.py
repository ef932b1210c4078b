"""``phigate purge``: retention (bodies shredded, then metadata and audit entries removed).

Runs without the master key (the purge timer gets no credentials): destroying a wrapped data
key does not need to unwrap it.
"""

from __future__ import annotations

import argparse
import json

from phigate.admin.access import Gate
from phigate.admin.retention import PurgeReport, purge
from phigate.admin.roles import Identity, Role
from phigate.audit.checkpoint import audit_log_for
from phigate.cli.context import CliContext, SubParsers
from phigate.clock import utcnow
from phigate.queue.db import ensure_current, make_engine


def register(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "purge", help="apply retention: destroy old bodies, remove expired metadata")
    parser.add_argument("--dry-run", action="store_true", help="count only, change nothing")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run)


def describe(report: PurgeReport, body_days: int, metadata_days: int) -> str:
    verb = "would be" if report.dry_run else "were"
    lines = [
        f"{report.bodies_destroyed} message bodies {verb} destroyed "
        f"(finished more than {body_days} days ago)",
        f"{report.messages_removed} messages {verb} removed with their metadata and "
        f"{report.audit_entries_removed} audit entries (older than {metadata_days} days)",
    ]
    if report.tokens_removed or report.pickups_expired:
        lines.append(f"{report.tokens_removed} expired unsubscribe/VERP tokens {verb} "
                     f"forgotten; {report.pickups_expired} expired pickups {verb} "
                     "destroyed")
    if report.kept_for_review:
        lines.append(f"{report.kept_for_review} held, quarantined, corrupt or unapproved "
                     f"messages are older than {body_days} days and were NOT purged: review "
                     "them (phigate queue list --state quarantined|held|corrupt)")
    return "\n".join(lines)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    settings = ctx.settings()
    engine = make_engine(settings.storage.url)
    try:
        ensure_current(engine)
        audit = audit_log_for(settings, engine)
        identity = Identity.current()
        Gate(audit, settings.admin, identity, service_user=settings.admin.service_user).require(
            Role.OPERATOR, "retention.purge", allow_service_user=True)
        report = purge(engine, audit, settings.retention, identity.actor, now=utcnow(),
                       dry_run=args.dry_run)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print(describe(report, settings.retention.body_days, settings.retention.metadata_days))
    return 0
