"""End to end: an ALL-CAPS nursing note pasted into a marketing message is quarantined.

The small spaCy model is blind in capitals, so what catches this note are the case-independent
recognizers (a clinician after "DR", a relative after "DAUGHTER", M/D dates, "ST. X'S", the
clinical abbreviations). It goes through a real SMTP submission (STARTTLS, AUTH) to the relay
with scanning on, and no log line, in either format, carries any of the note's PHI.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest

from phigate.audit.log import Actor
from phigate.observability.logs import JsonFormatter, LogfmtFormatter
from phigate.policy.consent import ConsentChange
from phigate.policy.stores import PolicyStores
from phigate.queue.models import MessageState
from phigate.serve import RunningServices

RECIPIENT = "reader@example.org"
CAMPAIGN = "heart-walk"
# Made up: no such clinician, relative or hospital.
NOTE = (
    "NURSING PROGRESS NOTE 4/17: PT S/P CABG X3. SPOKE WITH DR HALVORSEN RE BP 90/60. "
    "DAUGHTER ELLEN AT BEDSIDE, AWARE OF PLAN. TX TO ST. BRENDAN'S ON 6/2. "
    "HEPARIN GTT AT 12 UNITS/HR."
)
BODY = (
    "SPRING WELLNESS NEWS FROM YOUR CARE TEAM. JOIN OUR HEALTHY HEART WALK THIS SATURDAY!\n\n"
    f"{NOTE}\n\nTO UNSUBSCRIBE, REPLY STOP.\n"
)
PHI = ("HALVORSEN", "ELLEN", "BRENDAN", "4/17", "6/2", "CABG", "HEPARIN", "90/60", RECIPIENT)


@pytest.fixture
async def relay(relay_factory: Callable[..., Any]) -> AsyncIterator[RunningServices]:
    async with relay_factory(scanner={"enabled": True, "workers": 1}) as running:
        running.runtime.accounts.add("news", "pw", senders=["practice.test"],
                                     classes=["marketing"])
        # Consent and an approved campaign: only the PHI rule can stop this message.
        stores = PolicyStores.from_runtime(running.runtime)
        stores.consents.apply(ConsentChange(RECIPIENT, "marketing"), actor=Actor("test"))
        stores.campaigns.approve(CAMPAIGN, actor=Actor("test"))
        yield running


def marketing_message(body: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "news@practice.test"
    mail["To"] = RECIPIENT
    mail["Subject"] = "Spring wellness news"
    mail["X-Phigate-Class"] = "marketing"
    mail["X-Phigate-Campaign"] = CAMPAIGN
    mail.set_content(body)
    return mail


async def submit(running: RunningServices, client_tls: ssl.SSLContext, mail: EmailMessage
                 ) -> str:
    port = running.runtime.settings.submission.listen.port
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, tls_context=client_tls,
                               start_tls=True, timeout=60) as client:
        await client.login("news", "pw")
        _, reply = await client.send_message(mail)
    return reply.rsplit(" ", 1)[1]


@pytest.mark.slow
async def test_caps_clinical_note_in_marketing_is_quarantined_and_never_logged(
    relay: RunningServices, client_tls: ssl.SSLContext, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    store = relay.runtime.store

    note_id = await submit(relay, client_tls, marketing_message(BODY))
    held = store.get_message(note_id)
    assert held.state == MessageState.QUARANTINED
    assert held.phi_verdict == "phi"
    assert any(hit["rule"] == "phi-by-class" and hit["action"] == "quarantine"
               for hit in held.rule_hits)
    assert {"PERSON", "DATE"} <= set(held.phi_categories)

    # The same newsletter without the note is ordinary marketing and goes out.
    plain_id = await submit(relay, client_tls, marketing_message(BODY.replace(NOTE, "")))
    plain = store.get_message(plain_id)
    assert plain.state == MessageState.ACTIVE
    assert plain.phi_verdict != "phi"

    lines = [formatter.format(record) for record in caplog.records
             for formatter in (LogfmtFormatter(), JsonFormatter())]
    assert any(note_id in line for line in lines)
    for secret in PHI:
        assert not [line for line in lines if secret.lower() in line.lower()], secret
