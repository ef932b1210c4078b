"""``phigate campaign show ID [--json]``: results from the queue, attempts and feedback."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from phigate.audit.log import Actor
from phigate.cli.main import main
from phigate.policy.campaigns import CampaignStore
from phigate.queue.models import Attempt, Recipient, RecipientState
from phigate.queue.policy_models import FeedbackEvent, Suppression
from phigate.runtime import Runtime

from .test_cli import config  # noqa: F401  (fixture)

Enqueue = Callable[..., str]
HOUR = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)


def _finish(runtime: Runtime, message_id: str, states: dict[str, tuple[RecipientState,
            int | None, str | None]]) -> None:
    with runtime.store.writing() as session:
        for recipient in session.scalars(select(Recipient).where(
                Recipient.message_id == message_id)):
            state, code, text = states[recipient.address]
            recipient.state, recipient.last_code, recipient.last_text = state, code, text
            if state is RecipientState.CANCELLED:
                continue
            session.add(Attempt(recipient_id=recipient.id, message_id=message_id,
                                started_at=HOUR + timedelta(minutes=5), code=code, text=text,
                                permanent=state is RecipientState.BOUNCED))


def _campaign(runtime: Runtime, enqueue: Enqueue) -> None:
    CampaignStore(runtime.engine, runtime.audit, runtime.settings.policy).approve(
        "flu-2026", actor=Actor("olga", "192.0.2.4"), now=HOUR)
    delivered = [f"p{n}@clinic.example" for n in range(996)]
    first = enqueue(*delivered, "gone@clinic.example", "full@clinic.example",
                    "cancelled@clinic.example", message_class="marketing",
                    campaign_id="flu-2026", age=datetime.now(UTC) - HOUR)
    _finish(runtime, first, {
        **{a: (RecipientState.DELIVERED, 250, "ok") for a in delivered},
        "gone@clinic.example": (RecipientState.BOUNCED, 550, "5.1.1 user unknown"),
        "full@clinic.example": (RecipientState.BOUNCED, 552, "5.2.2 mailbox full"),
        "cancelled@clinic.example": (RecipientState.CANCELLED, None, None)})
    with runtime.store.writing() as session:
        session.add(FeedbackEvent(received_at=HOUR + timedelta(hours=1), kind="complaint",
                                  campaign_id="flu-2026", recipients=[{"address": "x"}]))
        session.add(FeedbackEvent(received_at=HOUR + timedelta(hours=1), kind="bounce",
                                  campaign_id="flu-2026",
                                  recipients=[{"address": "y", "category": "userunknown"}]))
        session.add(Suppression(address="p1@clinic.example", scope="marketing",
                                kind="unsubscribe", reason="unsubscribe (one-click)",
                                source="one-click", campaign_id="flu-2026",
                                created_at=HOUR + timedelta(hours=2)))
    with runtime.store.writing() as session:
        store = CampaignStore(runtime.engine, runtime.audit, runtime.settings.policy)
        store.count(session, "flu-2026", "complaints", now=HOUR)
        store.count(session, "flu-2026", "unsubscribes", now=HOUR)
        store.count(session, "flu-2026", "feedback_bounces", now=HOUR)


def test_campaign_show_json_has_results_rates_and_hourly_series(
        config: Path, runtime: Runtime, enqueue: Enqueue,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    _campaign(runtime, enqueue)
    assert main(["--config", str(config), "campaign", "show", "flu-2026", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["sent"], shown["delivered"], shown["deferred"], shown["bounced"]) == (
        998, 996, 0, 3)
    assert shown["bounced_by_category"] == {"userunknown": 2, "mailboxfull": 1}
    assert shown["complaint_rate"] == {"count": 1, "of": 996, "rate": 0.001004,
                                       "warning_at": 0.001, "limit": 0.003, "level": "warning"}
    assert shown["unsubscribes"] == 1 and shown["approved_ip"] == "192.0.2.4"
    hours = {row["hour"]: row for row in shown["series"]}
    first = hours["2026-11-03T14:00:00+00:00"]
    assert (first["accepted"], first["delivered"], first["bounced"]) == (998, 996, 2)
    assert hours["2026-11-03T15:00:00+00:00"]["complaints"] == 1
    assert hours["2026-11-03T15:00:00+00:00"]["bounced"] == 1
    assert hours["2026-11-03T16:00:00+00:00"]["unsubscribes"] == 1
    assert "@" not in json.dumps(shown)


def test_campaign_show_text_flags_the_warning_line(
        config: Path, runtime: Runtime, enqueue: Enqueue,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    _campaign(runtime, enqueue)
    assert main(["--config", str(config), "campaign", "show", "flu-2026"]) == 0
    out = capsys.readouterr().out
    assert "approved by olga from 192.0.2.4" in out
    assert "(userunknown 2, mailboxfull 1)" in out
    assert "0.10% of delivered (warn 0.10%, pause 0.30%)  WARNING" in out
    assert "2026-11-03 14:00" in out and "@" not in out


def test_campaign_show_of_an_unknown_campaign_is_one_line(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert main(["--config", str(config), "campaign", "show", "nope"]) == 1
    assert capsys.readouterr().err == "phigate: error: no campaign 'nope'\n"


def test_campaign_list_leaves_cancelled_recipients_out(
        config: Path, runtime: Runtime, enqueue: Enqueue,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    from phigate.queue.models import MessageState
    only = enqueue("c@clinic.example", message_class="marketing", campaign_id="solo",
                   state=MessageState.AWAITING_APPROVAL)
    _finish(runtime, only, {"c@clinic.example": (RecipientState.CANCELLED, None, None)})
    assert main(["--config", str(config), "campaign", "list", "--json"]) == 0
    assert [v for v in json.loads(capsys.readouterr().out) if v["id"] == "solo"] == []
