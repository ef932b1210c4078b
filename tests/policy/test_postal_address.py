"""Marketing mail is refused (451) until ``[policy] postal_address`` is set."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import AsyncIterator

import pytest

from phigate.config import Settings
from phigate.queue.db import make_engine, upgrade
from phigate.serve import start_services, stop_services
from policy.support import PASSWORD, PolicyRelay, mail, submit


@pytest.fixture
async def relay_without_address(policy_settings: Settings) -> AsyncIterator[PolicyRelay]:
    settings = dataclasses.replace(
        policy_settings, policy=dataclasses.replace(policy_settings.policy, postal_address=""))
    engine = make_engine(settings.storage.url)
    upgrade(engine)
    engine.dispose()
    running = await start_services(settings, {"smtp"})
    running.runtime.accounts.add("news", PASSWORD, senders=["practice.test"],
                                 classes=["marketing", "treatment"])
    assert running.policy_stores is not None
    try:
        yield PolicyRelay(settings, running, running.policy_stores)
    finally:
        await stop_services(running, grace=2)


async def test_marketing_waits_for_a_postal_address_treatment_does_not(
        relay_without_address: PolicyRelay, client_tls: ssl.SSLContext) -> None:
    relay = relay_without_address
    relay.grant("fan@example.org")
    refused = await submit(relay, client_tls, mail(message_class="marketing", campaign="spring"),
                           ["fan@example.org"], user="news")
    assert refused.data is not None and refused.data[0] == 451
    assert "[policy] postal_address" in refused.data[1]
    reminder = await submit(relay, client_tls, mail(message_class="treatment"),
                            ["fan@example.org"], user="news")
    assert reminder.data is not None and reminder.data[0] == 250
