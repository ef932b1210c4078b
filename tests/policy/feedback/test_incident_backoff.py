"""Bounce incidents as configured: the back-off comes from ``[feedback]``, and the metric
that exposes incidents names reasons only, never a domain or an address (real feedback
listener, real HTTP scrape of /metrics)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import aiohttp
import pytest
from helpers.dns_server import DnsServer

from phigate.config import Settings, validate
from phigate.errors import ConfigError
from phigate.policy.tokens import TokenSigner
from policy.support import PolicyRelay
from policy.test_bounce_incidents import dsn
from policy.test_feedback_listener import deliver, verp

BLOCKED = "554 5.7.1 Service unavailable; Client host [192.0.2.9] blocked using zen.spamhaus.org"


@pytest.fixture
def policy_settings(make_settings: Callable[..., Settings], dns_server: DnsServer,
                    token_key: object) -> Settings:
    return make_settings(
        policy={"token_key_file": str(token_key), "dns_timeout_seconds": 2.0},
        delivery={"dns_servers": [dns_server.address]},
        http={"public_url": "https://relay.practice.test"},
        feedback={"bounce_domain": "bounces.practice.test",
                  "incident_hold_base_seconds": 60, "incident_hold_max_seconds": 300},
    )


async def test_the_backoff_is_the_configured_one(policy_relay: PolicyRelay,
                                                 signer: TokenSigner) -> None:
    incidents = policy_relay.stores.incidents
    assert incidents is not None
    holds = []
    for name in ("pat", "lee", "kim", "ann"):
        address = verp(policy_relay, signer, f"{name}@clinic-patients.example")
        code, _ = await deliver(policy_relay, address,
                                dsn(f"{name}@clinic-patients.example", "5.7.1", BLOCKED))
        assert code == 250
        [incident] = incidents.entries()
        holds.append(incident.hold_until - incident.last_seen)
    # 60 s, doubling, capped at 300 s (the defaults would give 15 min, 30 min, ...)
    assert holds == [timedelta(seconds=s) for s in (60, 120, 240, 300)]
    assert policy_relay.stores.suppressions.entries() == []


async def test_no_address_or_domain_in_the_incident_metric(policy_relay: PolicyRelay,
                                                          signer: TokenSigner) -> None:
    address = verp(policy_relay, signer, "pat@clinic-patients.example")
    await deliver(policy_relay, address, dsn("pat@clinic-patients.example", "5.7.1", BLOCKED))
    url = f"http://127.0.0.1:{policy_relay.settings.http.listen.port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        text = await response.text()
    lines = [line for line in text.splitlines() if line.startswith("phigate_bounce_incidents")]
    assert 'phigate_bounce_incidents{reason="blocked"} 1.0' in lines
    assert all("@" not in line and "clinic-patients" not in line for line in lines)
    assert "clinic-patients" not in text and "pat@" not in text


@pytest.mark.parametrize(("base", "cap"), [(0, 300), (600, 300)])
def test_a_backoff_that_cannot_work_is_refused(make_settings: Callable[..., Settings],
                                               base: int, cap: int) -> None:
    settings = make_settings(feedback={"incident_hold_base_seconds": base,
                                       "incident_hold_max_seconds": cap})
    with pytest.raises(ConfigError, match="incident_hold_base_seconds"):
        validate(settings, check_files=False)
