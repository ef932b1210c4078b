"""``qshape`` for phigate: pending recipients per destination domain by age of their message."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phigate.admin.timebuckets import age_bucket
from phigate.queue.models import PENDING_RECIPIENT_STATES, Message, Recipient, RecipientState

#: Postfix qshape's default buckets, in minutes: each twice the previous.
BUCKET_MINUTES = (5, 10, 20, 40, 80, 160, 320, 640, 1280)
BUCKET_LABELS = (*(str(m) for m in BUCKET_MINUTES), f"{BUCKET_MINUTES[-1]}+")


@dataclass(frozen=True)
class ShapeRow:
    domain: str
    total: int
    buckets: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"domain": self.domain, "total": self.total,
                "buckets": dict(zip(BUCKET_LABELS, self.buckets, strict=True))}


@dataclass(frozen=True)
class QueueShape:
    total: ShapeRow
    domains: list[ShapeRow]
    #: Domains beyond ``top`` folded into one row (None when there were none).
    others: ShapeRow | None


def queue_shape(
    session: Session, *, now: datetime, deferred_only: bool = False, top: int = 20
) -> QueueShape:
    states = (RecipientState.DEFERRED,) if deferred_only else PENDING_RECIPIENT_STATES
    bucket = age_bucket(Message.created_at, now, [timedelta(minutes=m) for m in BUCKET_MINUTES])
    query = (
        select(Recipient.domain, bucket, func.count())
        .join(Message, Message.id == Recipient.message_id)
        .where(Recipient.state.in_(states))
        .group_by(Recipient.domain, bucket)
    )
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * len(BUCKET_LABELS))
    for domain, index, count in session.execute(query):
        counts[domain][int(index)] += int(count)
    rows = sorted((_row(domain, buckets) for domain, buckets in counts.items()),
                  key=lambda row: (-row.total, row.domain))
    shown, rest = rows[:top], rows[top:]
    return QueueShape(
        total=_sum("TOTAL", rows),
        domains=shown,
        others=_sum(f"({len(rest)} more)", rest) if rest else None,
    )


def _row(domain: str, buckets: list[int]) -> ShapeRow:
    return ShapeRow(domain, sum(buckets), tuple(buckets))


def _sum(name: str, rows: list[ShapeRow]) -> ShapeRow:
    buckets = [0] * len(BUCKET_LABELS)
    for row in rows:
        for index, count in enumerate(row.buckets):
            buckets[index] += count
    return _row(name, buckets)


def format_shape(shape: QueueShape, *, width: int = 24) -> str:
    """The table as qshape prints it: domain, total, then one column per age bucket."""
    header = f"{'':>{width}} {'T':>6} " + " ".join(f"{label:>5}" for label in BUCKET_LABELS)
    lines = [header]
    rows = [shape.total, *shape.domains, *([shape.others] if shape.others else [])]
    for row in rows:
        name = row.domain if len(row.domain) <= width else "…" + row.domain[-(width - 1):]
        lines.append(f"{name:>{width}} {row.total:>6} "
                     + " ".join(f"{count:>5}" for count in row.buckets))
    return "\n".join(lines)
