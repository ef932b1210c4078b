"""``phigate queue``: mailq, postsuper and qshape for phigate, over the admin service."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import TextIO

from phigate.admin import STATE_CHOICES, ActionOutcome, AdminService, QueueFilter, QueueRow
from phigate.admin.durations import parse_duration
from phigate.admin.service import MessageDetail, open_service
from phigate.admin.shape import format_shape
from phigate.cli.context import CliContext, SubParsers
from phigate.cli.table import write_table
from phigate.clock import utcnow
from phigate.queue.views import as_dict

PAGE = 1000


def register(subparsers: SubParsers) -> None:
    queue = subparsers.add_parser("queue", help="list, inspect and act on queued mail")
    commands = queue.add_subparsers(dest="queue_command", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="recipients in the queue (oldest first)")
    listing.add_argument("--state", choices=STATE_CHOICES, default="pending",
                         help="message or recipient state (default: pending recipients)")
    listing.add_argument("--domain", help="destination domain")
    listing.add_argument("--sender", help="part of the envelope sender")
    listing.add_argument("--class", dest="message_class", help="message class")
    listing.add_argument("--older-than", type=parse_duration, metavar="AGE",
                         help="only messages older than AGE (90s, 30m, 1h, 2d)")
    listing.add_argument("--limit", type=int, default=0, help="at most this many rows")
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    listing.set_defaults(handler=run_list)

    show = commands.add_parser("show", help="envelope, verdict, reasons and attempts (no body)")
    show.add_argument("message_id", metavar="ID")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=run_show)

    for name, text in (("retry", "make pending recipients due now"),
                       ("hold", "hold messages (delivery stops)"),
                       ("release", "release held, quarantined or corrupt messages"),
                       ("delete", "cancel delivery and destroy the body (envelope kept)"),
                       ("bounce", "fail pending recipients and send the sender a DSN")):
        action = commands.add_parser(name, help=text)
        action.add_argument("message_ids", metavar="ID", nargs="+")
        if name in ("hold", "release", "bounce"):
            action.add_argument("--reason", help="recorded in the audit log"
                                + (" (required for quarantined mail)" if name == "release"
                                   else ""))
        action.set_defaults(handler=run_action, queue_action=name)

    shape = commands.add_parser("shape", help="qshape: destination domains by age (minutes)")
    shape.add_argument("--deferred", action="store_true", help="only deferred recipients")
    shape.add_argument("--top", type=int, default=20, help="domains shown (default 20)")
    shape.add_argument("--json", action="store_true")
    shape.set_defaults(handler=run_shape)


def _rows(service: AdminService, filters: QueueFilter, limit: int) -> Iterator[QueueRow]:
    after: int | None = None
    emitted = 0
    while True:
        page = service.page(filters, after=after, limit=PAGE)
        for row in page.rows:
            if limit and emitted >= limit:
                return
            emitted += 1
            yield row
        if page.next_after is None:
            return
        after = page.next_after


def _age(created_at: datetime, now: datetime) -> str:
    seconds = int((now - created_at).total_seconds())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _table_row(row: QueueRow, now: datetime) -> list[str]:
    state = row.recipient_state if row.message_state == "active" else row.message_state
    last = " ".join(part for part in (str(row.last_code or ""), (row.last_text or "")[:60])
                    if part)
    return [row.message_id, _age(row.created_at, now), str(state), str(row.attempts),
            row.sender or "<>", row.recipient, last or "-"]


def _print_table(rows: Iterator[QueueRow], out: TextIO) -> int:
    now = utcnow()
    count = write_table(out, ("ID", "AGE", "STATE", "ATT", "SENDER", "RECIPIENT", "LAST REPLY"),
                        (_table_row(row, now) for row in rows), right=(1, 3))
    print(f"-- {count} recipient(s)", file=out)
    return count


def run_list(args: argparse.Namespace, ctx: CliContext) -> int:
    filters = QueueFilter(state=args.state, domain=args.domain, sender=args.sender,
                          message_class=args.message_class, older_than=args.older_than)
    service, close = open_service(ctx.settings())
    try:
        rows = _rows(service, filters, args.limit)
        if not args.json:
            _print_table(rows, sys.stdout)
            return 0
        # Streamed as one array: the queue may hold 100,000 recipients.
        sys.stdout.write("[")
        for index, row in enumerate(rows):
            sys.stdout.write(("," if index else "") + "\n" + json.dumps(row.as_dict()))
        sys.stdout.write("\n]\n")
        return 0
    finally:
        close()


def detail_dict(detail: MessageDetail) -> dict[str, object]:
    return {**as_dict(detail.view), "attempts": [a.as_dict() for a in detail.attempts],
            "pickup_events": detail.pickup_events}


def _print_detail(detail: MessageDetail) -> None:
    view = detail.view
    print(f"message      {view.id}")
    print(f"received     {view.created_at.isoformat(timespec='seconds')} from "
          f"{view.username or '-'} ({view.client_ip or '-'}), {view.size} bytes")
    print(f"state        {view.state}" + (f" ({view.hold_reason})" if view.hold_reason else ""))
    print(f"sender       {view.sender or '<>'}")
    print(f"class        {view.message_class}"
          + (f", campaign {view.campaign_id}" if view.campaign_id else ""))
    categories = ", ".join(view.phi_categories) or "-"
    print(f"PHI verdict  {view.phi_verdict} (categories: {categories})")
    print(f"body         {'destroyed (purged)' if view.purged else 'stored encrypted'}")
    print("rule hits")
    for hit in view.rule_hits:
        print(f"  {hit.get('rule', '?')}: {hit.get('action', '')} {hit.get('reason', '')}".rstrip())
    if not view.rule_hits:
        print("  (none)")
    print("recipients")
    for r in view.recipients:
        reply = " ".join(part for part in (str(r.last_code or ""), r.last_text or "") if part)
        last = f"  last reply {reply}" if reply else ""
        print(f"  {r.address}  {r.state}  attempts {r.attempts}{last}")
    print("attempts")
    for a in detail.attempts or []:
        tls = (f"{a.tls_version} {a.tls_cipher} "
               f"{'verified' if a.cert_verified else 'unverified'}" if a.tls_version
               else "no TLS")
        if a.tls_policy:
            tls = f"policy {a.tls_policy}, {tls}"
        print(f"  {a.started_at.isoformat(timespec='seconds')} {a.recipient} via "
              f"{a.host or '-'}: {a.code or '-'} {a.text or ''} [{tls}]")
    if not detail.attempts:
        print("  (none)")
    if detail.pickup_events:
        print("secure pickup")
        for event in detail.pickup_events:
            print(f"  {event['at']} {event['action'].removeprefix('pickup_')} "
                  f"from {event['ip'] or '-'}")


def run_show(args: argparse.Namespace, ctx: CliContext) -> int:
    service, close = open_service(ctx.settings())
    try:
        detail = service.message(args.message_id)
    finally:
        close()
    if args.json:
        print(json.dumps(detail_dict(detail), indent=2))
    else:
        _print_detail(detail)
    return 0


def print_outcomes(outcomes: list[ActionOutcome]) -> int:
    for outcome in outcomes:
        if outcome.ok:
            print(f"{outcome.message_id}: {outcome.detail}")
        else:
            print(f"phigate: error: {outcome.detail}", file=sys.stderr)
    return 0 if all(outcome.ok for outcome in outcomes) else 1


def run_action(args: argparse.Namespace, ctx: CliContext) -> int:
    service, close = open_service(ctx.settings())
    try:
        ids = list(dict.fromkeys(args.message_ids))
        reason = getattr(args, "reason", None)
        if args.queue_action == "retry":
            outcomes = service.retry(ids)
        elif args.queue_action == "hold":
            outcomes = service.hold(ids, reason=reason)
        elif args.queue_action == "release":
            outcomes = service.release(ids, reason=reason)
        elif args.queue_action == "bounce":
            outcomes = service.bounce(ids, reason=reason)
        else:
            outcomes = service.delete(ids)
    finally:
        close()
    return print_outcomes(outcomes)


def run_shape(args: argparse.Namespace, ctx: CliContext) -> int:
    service, close = open_service(ctx.settings())
    try:
        shape = service.shape(deferred_only=args.deferred, top=args.top)
    finally:
        close()
    if args.json:
        rows = [shape.total, *shape.domains, *([shape.others] if shape.others else [])]
        print(json.dumps([row.as_dict() for row in rows]))
    else:
        print(format_shape(shape))
    return 0
