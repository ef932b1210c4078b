"""End to end: the relay scans before 250, and the policy acts on the verdict per class."""

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

PATIENT = "Margaret Okonkwo"
DIAGNOSIS = "type 2 diabetes mellitus"
MRN = "MRN 00482913"
RECIPIENT = "someone@example.org"
CAMPAIGN = "spring-wellness"


@pytest.fixture
async def scanning_relay(relay_factory: Callable[..., Any]) -> AsyncIterator[RunningServices]:
    # The recipient's domain is a BAA partner here, so treatment PHI may go there.
    async with relay_factory(
        scanner={"enabled": True, "workers": 1},
        policy={"phi_allowed_domains": ["practice.test", "example.org"]},
    ) as running:
        yield _prepared(running)


def _prepared(running: RunningServices) -> RunningServices:
    running.runtime.accounts.add("clinic", "pw", senders=["practice.test"],
                                 classes=["treatment", "marketing"])
    # Marketing passes consent and campaign approval, so the PHI rule is what decides.
    stores = PolicyStores.from_runtime(running.runtime)
    stores.consents.apply(ConsentChange(RECIPIENT, "marketing"), actor=Actor("test"))
    stores.campaigns.approve(CAMPAIGN, actor=Actor("test"))
    return running


def message(message_class: str, body: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "news@practice.test"
    mail["To"] = RECIPIENT
    mail["Subject"] = "From your care team"
    mail["X-Phigate-Class"] = message_class
    if message_class == "marketing":
        mail["X-Phigate-Campaign"] = CAMPAIGN
    mail.set_content(body)
    return mail


async def send(running: RunningServices, client_tls: ssl.SSLContext, mail: EmailMessage) -> str:
    port = running.runtime.settings.submission.listen.port
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, tls_context=client_tls,
                               start_tls=True, timeout=60) as client:
        await client.login("clinic", "pw")
        _, reply = await client.send_message(mail)
    return reply.rsplit(" ", 1)[1]


@pytest.mark.slow
async def test_phi_quarantined_in_marketing_tagged_in_treatment_and_never_logged(
    scanning_relay: RunningServices, client_tls: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    body = (f"Dear {PATIENT}, {MRN}: your recent results for {DIAGNOSIS} are ready. "
            "Join our new wellness programme!")
    store = scanning_relay.runtime.store

    marketing_id = await send(scanning_relay, client_tls, message("marketing", body))
    marketing = store.get_message(marketing_id)
    assert marketing.state == MessageState.QUARANTINED
    assert marketing.phi_verdict == "phi"
    assert marketing.message_class == "marketing"
    assert any(hit["rule"] == "phi-by-class" and hit["action"] == "quarantine"
               for hit in marketing.rule_hits)

    treatment_id = await send(scanning_relay, client_tls, message("treatment", body))
    treatment = store.get_message(treatment_id)
    assert treatment.state == MessageState.ACTIVE
    assert treatment.phi_verdict == "phi"
    assert treatment.phi_categories  # categories are stored, the text is not

    lines = [formatter.format(record) for record in caplog.records
             for formatter in (LogfmtFormatter(), JsonFormatter())]
    assert any(marketing_id in line for line in lines)
    for secret in (PATIENT, "Okonkwo", DIAGNOSIS, "00482913", "someone@example.org"):
        assert not [line for line in lines if secret in line], secret
