"""No PHI from the practice-email corpus in any log line or metric label.

A whole relay (submission with PHI scanning, delivery to a TLS sink, http) takes messages
from ``bench/data/practice_emails`` (treatment, operations and marketing, with and without
PHI), some accepted and delivered, some quarantined, some refused. Every log record any
logger produced, formatted by both phigate formatters, and the /metrics exposition must
not contain a patient's name, address, condition, medication, identifier, the subject line
or the recipient's address.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
from collections import Counter
from collections.abc import Callable
from email import message_from_string, policy
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from helpers.tls_sink import TlsSink
from helpers.wait import wait_until
from sqlalchemy import select

from phigate.config import Settings
from phigate.observability.logs import JsonFormatter, LogfmtFormatter
from phigate.observability.metrics import METRICS
from phigate.queue.db import make_engine, upgrade
from phigate.queue.models import Message, MessageState
from phigate.queue.store import SqlQueueStore
from phigate.serve import start_services, stop_services

CORPUS = Path(__file__).resolve().parents[2] / "bench/data/practice_emails/emails.jsonl"
SECRET_CATEGORIES = {"PERSON", "STREET_ADDRESS", "CONDITION", "MEDICATION", "PROCEDURE",
                     "MEDICAL_RECORD_NUMBER", "US_SSN", "EMAIL_ADDRESS", "PHONE_NUMBER",
                     "FAX_NUMBER", "HEALTH_PLAN_NUMBER", "ACCOUNT_NUMBER", "LAB_RESULT"}
PER_KIND = 3  # messages of each corpus kind: 30 in all


def corpus_sample() -> list[dict[str, object]]:
    rows = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    taken: dict[str, int] = {}
    sample = []
    for row in rows:
        if taken.get(row["kind"], 0) < PER_KIND:
            taken[row["kind"]] = taken.get(row["kind"], 0) + 1
            sample.append(row)
    return sample


def recipient_for(row: dict[str, Any], index: int) -> str:
    people = [s["text"] for s in row["spans"] if s["category"] == "PERSON"]
    name = re.sub(r"[^a-z]+", ".", str(people[0]).lower()).strip(".") if people else "patient"
    # Half to a domain PHI may go to (delivered over verified TLS), half elsewhere
    # (quarantined without email_phi consent): both paths log.
    domain = "patients.example" if index % 2 else "elsewhere.example"
    return f"{name}.{index}@{domain}"


def secrets_of(row: dict[str, Any]) -> set[str]:
    found = {str(s["text"]) for s in row["spans"]
             if s["category"] in SECRET_CATEGORIES and len(str(s["text"])) >= 6}
    found.add(str(row["subject"]))
    return found


def message_outcomes(store: SqlQueueStore) -> Counter[tuple[MessageState, str]]:
    with store.writing() as session:
        return Counter((m.state, m.phi_verdict) for m in session.scalars(select(Message)))


def as_submitted(row: dict[str, object]) -> bytes:
    message = message_from_string(str(row["eml"]), policy=policy.SMTP)
    del message["From"]
    message["From"] = "Practice <notify@practice.test>"
    return message.as_bytes()


@pytest.mark.skipif(not CORPUS.exists(), reason="practice-email corpus not generated")
@pytest.mark.slow
async def test_no_phi_in_logs_or_metrics(
    make_settings: Callable[..., Settings], tls_sink: TlsSink,
    client_tls: ssl.SSLContext, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sink = tls_sink.sink
    settings = make_settings(
        scanner={"enabled": True, "workers": 1},
        delivery=tls_sink.delivery(poll_interval_seconds=0.2, retry_base_seconds=1),
        policy={"phi_allowed_domains": ["practice.test", "patients.example"]},
    )
    engine = make_engine(settings.storage.url)
    upgrade(engine)
    engine.dispose()
    running = await start_services(settings, {"smtp", "delivery", "http"})
    running.runtime.accounts.add("clinic", "pw", senders=["practice.test"],
                                 classes=["treatment", "operations", "marketing"])
    secrets: set[str] = set()
    replies: list[str] = []
    try:
        sample = corpus_sample()
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=settings.submission.listen.port,
                                   tls_context=client_tls, start_tls=True,
                                   timeout=60) as client:
            await client.login("clinic", "pw")
            for index, row in enumerate(sample):
                recipient = recipient_for(row, index)
                secrets |= secrets_of(row) | {recipient}
                try:
                    _, reply = await client.sendmail("notify@practice.test", [recipient],
                                                     as_submitted(row))
                    replies.append("250 " + reply)
                except aiosmtplib.SMTPResponseException as refused:
                    replies.append(f"{refused.code} {refused.message}")
            # A refusal path too: a From: the account may not use, with PHI in the subject.
            with pytest.raises(aiosmtplib.SMTPDataError):
                await client.sendmail("notify@practice.test", ["x@patients.example"],
                                      b"From: someone@elsewhere.test\r\nSubject: "
                                      + str(sample[0]["subject"]).encode() + b"\r\n\r\nx\r\n")
        accepted = sum(reply.startswith("250") for reply in replies)
        await wait_until(lambda: not any(
            state == MessageState.ACTIVE for state, _ in message_outcomes(running.runtime.store)),
            timeout=30, interval=0.2, what="every accepted message delivered or bounced")
        body, _ = METRICS.render()
        outcomes = message_outcomes(running.runtime.store)
    finally:
        await stop_services(running, grace=2)

    # The run exercised what it should: accepted, delivered and refused mail, and scanning.
    assert accepted >= len(sample) // 3, replies
    assert any(not reply.startswith("250") for reply in replies), replies
    done = sum(n for (state, _), n in outcomes.items() if state == MessageState.DONE)
    assert not [key for key in outcomes if key[0] == MessageState.ACTIVE], outcomes
    assert outcomes[(MessageState.DONE, "phi")], outcomes  # PHI went out (allowed domain)
    assert outcomes[(MessageState.QUARANTINED, "phi")], outcomes  # and PHI was held back
    assert len(sink.messages) == done
    assert any(r.getMessage() == "accepted" for r in caplog.records)

    lines = [formatter.format(record) for record in caplog.records
             for formatter in (LogfmtFormatter(), JsonFormatter())]
    exposition = body.decode()
    secrets = {s for s in secrets if len(s) >= 6}
    assert len(secrets) > 100
    leaks = sorted({s for s in secrets for line in lines if s in line})
    assert not leaks, f"PHI in log lines: {leaks[:10]}"
    assert not [s for s in secrets if s in exposition], "PHI in /metrics"
