"""Complaints per delivered recipient, per large recipient domain, over the last day.

Only domains with at least :data:`MIN_DAILY_VOLUME` deliveries a day get a figure (and a
metric label): the big mailbox providers whose 0.10% / 0.30% lines matter. A small domain
could point at a few patients, and its rate would mean nothing anyway.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phigate.observability.collectors import DomainSnapshot
from phigate.queue.models import Recipient, RecipientState
from phigate.queue.policy_models import FeedbackEvent

MIN_DAILY_VOLUME = 1000
MAX_DOMAINS = 20


def domain_complaint_rates(session: Session, now: datetime) -> list[DomainSnapshot]:
    since = now - timedelta(days=1)
    delivered = dict(session.execute(
        select(Recipient.domain, func.count()).where(
            Recipient.state == RecipientState.DELIVERED, Recipient.final_at >= since)
        .group_by(Recipient.domain).having(func.count() >= MIN_DAILY_VOLUME)
        .order_by(func.count().desc()).limit(MAX_DOMAINS)).all())
    if not delivered:
        return []
    complaints: Counter[str] = Counter()
    for recipients in session.scalars(select(FeedbackEvent.recipients).where(
            FeedbackEvent.kind == "complaint", FeedbackEvent.received_at >= since)):
        for recipient in recipients or []:
            domain = str(recipient.get("address", "")).rpartition("@")[2].lower()
            if domain in delivered:
                complaints[domain] += 1
    return [DomainSnapshot(domain, int(count), complaints.get(domain, 0))
            for domain, count in sorted(delivered.items())]
