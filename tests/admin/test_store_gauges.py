"""Scrape-time gauges from the real store: oldest age per state, complaint rate per domain."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from phigate.admin.dashboard import store_snapshot
from phigate.admin.domain_rates import MIN_DAILY_VOLUME
from phigate.observability.metrics import Metrics
from phigate.queue.models import MessageState, Recipient, RecipientState
from phigate.queue.policy_models import FeedbackEvent
from phigate.runtime import Runtime

Enqueue = Callable[..., str]


def test_quarantined_mail_is_not_counted_as_waiting_for_delivery(
        runtime: Runtime, enqueue: Enqueue) -> None:
    enqueue("a@x.example", state=MessageState.QUARANTINED, age=timedelta(days=2))
    enqueue("b@x.example", state=MessageState.HELD, age=timedelta(days=1))
    enqueue("c@x.example", age=timedelta(hours=3))
    metrics = Metrics()
    metrics.register_store_gauges(lambda: store_snapshot(runtime.store))
    waiting = metrics.registry.get_sample_value("phigate_queue_oldest_age_seconds",
                                                {"state": "waiting"})
    quarantined = metrics.registry.get_sample_value("phigate_queue_oldest_age_seconds",
                                                    {"state": "quarantined"})
    assert waiting is not None and 3 * 3600 - 60 < waiting < 3 * 3600 + 60
    assert quarantined is not None and quarantined > 47 * 3600


def test_complaint_rate_per_large_recipient_domain_only(
        runtime: Runtime, enqueue: Enqueue) -> None:
    now = datetime.now(UTC)
    enqueue(*[f"p{n}@bigmail.example" for n in range(MIN_DAILY_VOLUME + 1000)],
            message_class="marketing")
    enqueue(*[f"p{n}@tiny.example" for n in range(50)], message_class="marketing")
    with runtime.store.writing() as session:
        session.execute(update(Recipient).values(state=RecipientState.DELIVERED,
                                                 final_at=now - timedelta(hours=1)))
        complained = session.scalars(select(Recipient.address).limit(3)).all()
        session.add(FeedbackEvent(received_at=now, kind="complaint", recipients=[
            {"address": address} for address in [*complained, "p1@tiny.example"]]))
    metrics = Metrics()
    metrics.register_store_gauges(lambda: store_snapshot(runtime.store))
    ratio = metrics.registry.get_sample_value("phigate_domain_complaint_ratio",
                                              {"domain": "bigmail.example"})
    assert ratio == 3 / (MIN_DAILY_VOLUME + 1000)
    assert metrics.registry.get_sample_value("phigate_domain_complaint_ratio",
                                             {"domain": "tiny.example"}) is None
    exposition = metrics.render()[0].decode()
    assert "@" not in exposition
