"""``phigate campaign list|approve|pause``: marketing campaign approval."""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys

from phigate.admin.campaign_results import campaign_results
from phigate.admin.roles import Role
from phigate.cli.campaign_text import format_results
from phigate.cli.context import CliContext, SubParsers
from phigate.cli.policy_common import acting_admin, policy_stores, print_json_array
from phigate.cli.table import write_table
from phigate.clock import utcnow
from phigate.errors import UserError
from phigate.mta.delivery.review_notices import Review, notify_campaign_review
from phigate.policy.open_tracking import OpenStore


def register(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser("campaign", help="marketing campaigns: approval, counters")
    sub = parser.add_subparsers(dest="campaign_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="campaigns with their state and counters")
    listing.add_argument("--json", action="store_true", help="one JSON array")
    listing.set_defaults(handler=run_list)
    show = sub.add_parser("show", help="a campaign's results: delivery, bounce reasons, "
                          "complaint and unsubscribe rates, hourly series")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="one JSON object")
    show.set_defaults(handler=run_show)
    approve = sub.add_parser("approve", help="approve a campaign and release its messages")
    approve.add_argument("id")
    approve.add_argument("--ip", help="the approver's address (default: from SSH_CONNECTION)")
    approve.set_defaults(handler=run_approve)
    pause = sub.add_parser("pause", help="pause a campaign: its queued messages are held")
    pause.add_argument("id")
    pause.add_argument("--reason", required=True)
    pause.set_defaults(handler=run_pause)
    close = sub.add_parser("close", help="end a campaign's open tracking: its keyed hash set "
                           "is destroyed, the counts stay")
    close.add_argument("id")
    close.set_defaults(handler=run_close)


def run_list(args: argparse.Namespace, ctx: CliContext) -> int:
    with policy_stores(ctx) as (runtime, stores):
        acting_admin(runtime, "campaign list", needed=Role.VIEWER)
        views = stores.campaigns.views()
    if args.json:
        print_json_array([view.as_dict() for view in views])
        return 0
    rows = []
    for v in views:
        approved = f"{v.approved_by} ({v.approved_ip or '-'}) {v.approved_at:%Y-%m-%d %H:%M}" \
            if v.approved_at else "-"
        rows.append([v.id, str(v.state), str(v.accepted), str(v.delivered), str(v.bounced),
                     str(v.complaints), str(v.unsubscribes), approved])
    write_table(sys.stdout, ("CAMPAIGN", "STATE", "ACCEPTED", "DELIVERED", "BOUNCED",
                             "COMPLAINTS", "UNSUBS", "APPROVED BY"), rows,
                right=(2, 3, 4, 5, 6))
    return 0


def run_show(args: argparse.Namespace, ctx: CliContext) -> int:
    with policy_stores(ctx) as (runtime, stores):
        acting_admin(runtime, "campaign show", needed=Role.VIEWER)
        views = stores.campaigns.views(args.id)
        if not views:
            raise UserError(f"no campaign {args.id!r}")
        results = campaign_results(
            runtime.engine, views[0],
            pause_line=runtime.settings.policy.campaign_complaint_threshold,
            opens=OpenStore(runtime.store).summary(args.id))
    if args.json:
        print(json.dumps(results.as_dict(), indent=2))
    else:
        sys.stdout.write(format_results(results))
    return 0


def run_approve(args: argparse.Namespace, ctx: CliContext) -> int:
    if args.ip is not None:
        try:
            ipaddress.ip_address(args.ip)
        except ValueError:
            raise UserError(f"--ip: not an IP address: {args.ip!r}") from None
    with policy_stores(ctx) as (runtime, stores):
        actor = acting_admin(runtime, "campaign approve", ip=args.ip)
        released = stores.campaigns.approve(args.id, actor=actor)
        notify_campaign_review(runtime.store, runtime.settings, released, Review.RELEASED,
                               now=utcnow())
    print(f"phigate: approved campaign {args.id} as {actor.name} from {actor.ip or 'local'}; "
          f"released {len(released)} message(s)")
    return 0


def run_pause(args: argparse.Namespace, ctx: CliContext) -> int:
    with policy_stores(ctx) as (runtime, stores):
        actor = acting_admin(runtime, "campaign pause")
        held = stores.campaigns.pause(args.id, args.reason, actor=actor)
        notify_campaign_review(runtime.store, runtime.settings, held, Review.HELD,
                               now=utcnow())
    print(f"phigate: paused campaign {args.id}; held {len(held)} message(s)")
    return 0


def run_close(args: argparse.Namespace, ctx: CliContext) -> int:
    with policy_stores(ctx) as (runtime, stores):
        actor = acting_admin(runtime, "campaign close")
        if not stores.campaigns.views(args.id):
            raise UserError(f"no campaign {args.id!r}")
        with runtime.store.writing() as session:
            destroyed = OpenStore(runtime.store).close(args.id, session=session)
            runtime.audit.record(actor, "campaign.close_tracking", session=session,
                                 detail={"campaign": args.id, "digests_destroyed": destroyed})
    print(f"phigate: closed open tracking of campaign {args.id}; its hash set "
          f"({destroyed} digest(s)) and key are destroyed, the counts stay")
    return 0
