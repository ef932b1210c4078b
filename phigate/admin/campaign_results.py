"""What a campaign did: counts, bounce reasons, feedback rates and an hourly series.

``phigate campaign show`` and the TUI campaign screen read this. Every figure is a count;
no address leaves this module. Rates are measured against the bulk-sender lines: Gmail
asks for a complaint rate below 0.10% and never 0.30% (``[policy]
campaign_complaint_threshold``, where phigate pauses the campaign).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from phigate.policy.campaigns import CampaignView
from phigate.policy.feedback.reasons import judge
from phigate.policy.open_tracking import OpenSummary
from phigate.queue.models import Attempt, Message, Recipient, RecipientState
from phigate.queue.policy_models import FeedbackEvent, Suppression

COMPLAINT_WARNING = 0.001  # Gmail: stay below 0.10%
_BOUNCED = (RecipientState.BOUNCED, RecipientState.EXPIRED)


@dataclass
class HourCounts:
    hour: datetime
    accepted: int = 0
    delivered: int = 0
    deferred: int = 0
    bounced: int = 0
    complaints: int = 0
    unsubscribes: int = 0
    #: Estimated unique opens and proxy fetches first seen in the hour (tracked campaigns).
    opens: int = 0
    proxy_fetches: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"hour": self.hour.isoformat(), "accepted": self.accepted,
                "delivered": self.delivered, "deferred": self.deferred,
                "bounced": self.bounced, "complaints": self.complaints,
                "unsubscribes": self.unsubscribes, "estimated_opens": self.opens,
                "proxy_fetches": self.proxy_fetches}


@dataclass(frozen=True)
class Rate:
    count: int
    of: int
    warning: float
    limit: float

    @property
    def value(self) -> float:
        return self.count / self.of if self.of else 0.0

    @property
    def level(self) -> str:
        """ok, warning (at or over the 0.10% line) or over (past the pause line)."""
        if self.value > self.limit:
            return "over"
        return "warning" if self.value >= self.warning and self.count else "ok"

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "of": self.of, "rate": round(self.value, 6),
                "warning_at": self.warning, "limit": self.limit, "level": self.level}


@dataclass(frozen=True)
class CampaignResults:
    view: CampaignView
    bounced_by_category: dict[str, int]
    complaint_rate: Rate
    unsubscribe_rate: Rate
    series: list[HourCounts]
    opens: dict[str, Any] | None = field(default=None)

    def as_dict(self) -> dict[str, Any]:
        v = self.view
        return {
            "id": v.id, "state": v.state, "sent": v.accepted, "delivered": v.delivered,
            "deferred": v.deferred, "bounced": v.bounced,
            "bounced_by_category": dict(sorted(self.bounced_by_category.items())),
            "complaints": v.complaints, "unsubscribes": v.unsubscribes,
            "complaint_rate": self.complaint_rate.as_dict(),
            "unsubscribe_rate": self.unsubscribe_rate.as_dict(),
            "awaiting_approval": v.awaiting_approval,
            "approved_by": v.approved_by, "approved_ip": v.approved_ip,
            "approved_at": v.approved_at.isoformat() if v.approved_at else None,
            "pause_reason": v.pause_reason,
            "opens": self.opens,
            "series": [hour.as_dict() for hour in self.series],
        }


def filled_hours(series: Sequence[HourCounts], *, last: int = 48) -> list[HourCounts]:
    """The series hour by hour (hours without activity as zeros), at most its ``last``
    hours: what a sparkline plots."""
    if not series:
        return []
    by_hour = {h.hour: h for h in series}
    end, hour = series[-1].hour, max(series[0].hour, series[-1].hour - timedelta(hours=last - 1))
    filled = []
    while hour <= end:
        filled.append(by_hour.get(hour) or HourCounts(hour))
        hour += timedelta(hours=1)
    return filled


def cumulative_complaint_rate(series: Sequence[HourCounts]) -> list[float]:
    """After each hour of ``series``: complaints so far per delivered so far."""
    rates, complaints, delivered = [], 0, 0
    for hour in series:
        complaints, delivered = complaints + hour.complaints, delivered + hour.delivered
        rates.append(complaints / delivered if delivered else 0.0)
    return rates


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def campaign_results(engine: Engine, view: CampaignView, *, pause_line: float,
                     opens: OpenSummary | None = None) -> CampaignResults:
    """``opens``: the campaign's open counts (None: it never opted in, or nothing was
    fetched yet); shown as estimated."""
    with Session(engine) as session:
        categories = _bounce_categories(session, view.id)
        series = _series(session, view.id, opens)
    return CampaignResults(
        view=view, bounced_by_category=categories,
        complaint_rate=Rate(view.complaints, view.delivered, COMPLAINT_WARNING, pause_line),
        # Unsubscribes are no spam signal; the same lines flag an unusual campaign.
        unsubscribe_rate=Rate(view.unsubscribes, view.delivered, COMPLAINT_WARNING, pause_line),
        series=series, opens=opens.as_dict(view.delivered) if opens else None)


def _bounce_categories(session: Session, campaign_id: str) -> dict[str, int]:
    counts: Counter[str] = Counter()
    synchronous = session.execute(
        select(Recipient.state, Recipient.last_code, Recipient.last_text)
        .join(Message, Message.id == Recipient.message_id)
        .where(Message.campaign_id == campaign_id, Recipient.state.in_(_BOUNCED)))
    for state, code, text in synchronous:
        if state == RecipientState.EXPIRED:
            counts["expired"] += 1
        else:
            counts[str(judge(reply_code=str(code) if code else None, text=text).reason)] += 1
    reports = session.scalars(select(FeedbackEvent.recipients).where(
        FeedbackEvent.campaign_id == campaign_id, FeedbackEvent.kind == "bounce"))
    for recipients in reports:
        for recipient in recipients or []:
            counts[str(recipient.get("category") or "undefined")] += 1
    return dict(counts)


def _series(session: Session, campaign_id: str, opens: OpenSummary | None
            ) -> list[HourCounts]:
    hours: dict[datetime, HourCounts] = {}

    def at(moment: datetime) -> HourCounts:
        key = _hour(moment)
        return hours.setdefault(key, HourCounts(key))

    accepted = session.execute(
        select(Message.created_at).join(Recipient, Recipient.message_id == Message.id)
        .where(Message.campaign_id == campaign_id,
               Recipient.state != RecipientState.CANCELLED))
    for (created_at,) in accepted:
        at(created_at).accepted += 1
    attempts = session.execute(
        select(Attempt.started_at, Attempt.code, Attempt.permanent)
        .join(Message, Message.id == Attempt.message_id)
        .where(Message.campaign_id == campaign_id))
    for started_at, code, permanent in attempts:
        bucket = at(started_at)
        if code is not None and 200 <= code < 300:
            bucket.delivered += 1
        elif permanent:
            bucket.bounced += 1
        else:
            bucket.deferred += 1
    _add_feedback(session, campaign_id, at)
    for hour, (unique, proxy) in (opens.by_hour if opens else {}).items():
        bucket = at(hour)
        bucket.opens += unique
        bucket.proxy_fetches += proxy
    return [hours[key] for key in sorted(hours)]


def _add_feedback(session: Session, campaign_id: str, at: Callable[[datetime], HourCounts]
                  ) -> None:
    complaints = session.scalars(select(FeedbackEvent.received_at).where(
        FeedbackEvent.campaign_id == campaign_id, FeedbackEvent.kind == "complaint"))
    for received_at in complaints:
        at(received_at).complaints += 1
    # One-click unsubscribes leave no feedback event; each new one is a suppression.
    unsubscribes = session.scalars(select(Suppression.created_at).where(
        Suppression.campaign_id == campaign_id, Suppression.kind == "unsubscribe"))
    for created_at in unsubscribes:
        at(created_at).unsubscribes += 1
    bounces = session.execute(select(FeedbackEvent.received_at, FeedbackEvent.recipients).where(
        FeedbackEvent.campaign_id == campaign_id, FeedbackEvent.kind == "bounce"))
    for received_at, recipients in bounces:
        at(received_at).bounced += max(len(recipients or []), 1)
