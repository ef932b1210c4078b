"""Issue 13 item 5: ``GET /v1/messages/<queue-id>`` on the HTTP listener tells the sending
application what became of each recipient, authenticated with its submission account's
credentials. Tried as an attacker would, over real sockets: no credentials, a wrong
password (then a lockout), another account's queue id, guessed and malformed ids all learn
nothing; the owner's answer carries states and codes, never PHI.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from phigate.config import Settings
from phigate.queue.db import make_engine, upgrade
from phigate.serve import start_services, stop_services
from policy.support import PASSWORD, PHI_RESULT, PolicyRelay, mail, submit

SUBJECT = "Lab results for Jane Roe SSN 123-45-6789"
LEAKS = ("Jane", "Roe", "123-45-6789", "Lab results", "email_phi", "consent", "diagnosis",
         "phi", "Subject", "hold_reason")


@pytest.fixture
async def relay(policy_settings: Settings) -> AsyncIterator[PolicyRelay]:
    settings = dataclasses.replace(
        policy_settings, submission=dataclasses.replace(
            policy_settings.submission, auth_max_failures=3, auth_lockout_seconds=60))
    engine = make_engine(settings.storage.url)
    upgrade(engine)
    engine.dispose()
    running = await start_services(settings, {"smtp", "http"})
    accounts = running.runtime.accounts
    accounts.add("clinic", PASSWORD, senders=["practice.test"], classes=["treatment"])
    accounts.add("portal", "portal password", senders=["practice.test"], classes=["treatment"])
    assert running.policy_stores is not None
    try:
        yield PolicyRelay(settings, running, running.policy_stores)
    finally:
        await stop_services(running, grace=2)


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def get(relay: PolicyRelay, queue_id: str, headers: dict[str, str] | None = None
              ) -> tuple[int, dict[str, str], str]:
    listen = relay.settings.http.listen
    url = f"http://{listen.host}:{listen.port}/v1/messages/{queue_id}"
    async with aiohttp.ClientSession() as client, client.get(url, headers=headers or {}
                                                            ) as response:
        return response.status, dict(response.headers), await response.text()


def phi_mail() -> Any:
    message = mail(to="Jane Roe <jane.roe@example.org>", message_class="treatment",
                   sender="ehr@practice.test")
    del message["Subject"]
    message["Subject"] = SUBJECT
    return message


async def test_the_owner_sees_each_recipients_state_and_no_phi(
        relay: PolicyRelay, client_tls: ssl.SSLContext) -> None:
    relay.use_scanner(PHI_RESULT)
    queued = (await submit(relay, client_tls, phi_mail(),
                           ["jane.roe@example.org", "ops@practice.test"])).queued_id
    status, headers, text = await get(relay, queued, basic("clinic", PASSWORD))
    assert status == 200, text
    assert headers["Cache-Control"] == "no-store"
    answer = json.loads(text)
    assert answer["id"] == queued and answer["state"] == "quarantined"
    assert answer["class"] == "treatment"
    assert [(r["address"], r["state"], r["attempts"]) for r in answer["recipients"]] == [
        ("jane.roe@example.org", "queued", 0), ("ops@practice.test", "queued", 0)]
    assert set(answer) == {"id", "state", "class", "created_at", "recipients"}
    assert set(answer["recipients"][0]) == {"address", "state", "attempts", "next_attempt_at",
                                            "last_code", "last_status"}
    for leak in LEAKS:
        assert leak not in text, leak


async def test_no_credentials_or_a_wrong_password_get_401_then_a_lockout(
        relay: PolicyRelay, client_tls: ssl.SSLContext) -> None:
    queued = (await submit(relay, client_tls, mail(to="pat@example.org",
                                                   sender="ehr@practice.test"),
                           ["pat@example.org"])).queued_id
    status, headers, text = await get(relay, queued)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic "), text
    assert "pat@example.org" not in text
    for bad in ({"Authorization": "Bearer x"}, {"Authorization": "Basic !!!"},
                {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}):
        assert (await get(relay, queued, bad))[0] == 401
    for _ in range(3):  # [submission] auth_max_failures = 3
        status, _, text = await get(relay, queued, basic("clinic", "guess"))
        assert status == 401 and "pat@example.org" not in text
    # Locked out: even the right password is not checked now (and says nothing).
    status, headers, text = await get(relay, queued, basic("clinic", PASSWORD))
    assert status == 429 and int(headers["Retry-After"]) > 0, text
    assert "pat@example.org" not in text


async def test_another_accounts_guessed_and_malformed_ids_all_get_the_same_404(
        relay: PolicyRelay, client_tls: ssl.SSLContext) -> None:
    queued = (await submit(relay, client_tls, mail(to="pat@example.org",
                                                   sender="ehr@practice.test"),
                           ["pat@example.org"])).queued_id
    owner = basic("clinic", PASSWORD)
    assert (await get(relay, queued, owner))[0] == 200
    # The other account knows the id (from a log, say): nothing, exactly like an unknown id.
    other = await get(relay, queued, basic("portal", "portal password"))
    unknown = await get(relay, "0" * 11 + "ABCDEF0123", owner)
    assert other[0] == unknown[0] == 404 and other[2] == unknown[2]
    assert "pat@example.org" not in other[2]
    # Guessing ids next to a real one (same millisecond prefix, other random tails).
    prefix, tail = queued[:11], queued[11:]
    for guess in (prefix + f"{(int(tail, 16) + step) % 16**10:010X}" for step in (1, -1, 7)):
        assert (await get(relay, guess, owner))[2] == unknown[2]
    for malformed in (queued.lower(), queued + "%27%20OR%201=1", "..%2F..%2Fetc", "x" * 600):
        status, _, text = await get(relay, malformed, owner)
        assert status == 404 and "Traceback" not in text
