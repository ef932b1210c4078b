"""The pickup page over real HTTPS with a plain HTTP client: headers, cookie, refusals."""

from __future__ import annotations

import dataclasses
import logging
import re
import ssl
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
import trustme
from sqlalchemy import select

from phigate.audit.log import AuditLog
from phigate.observability.metrics import METRICS
from phigate.pickup.metrics import register_state_collector
from phigate.pickup.web import COOKIE
from phigate.queue.crypto import DecryptionError
from phigate.queue.pickup_models import Pickup, PickupState

from .conftest import OTHER, PATIENT, PHI_FILE, PHI_STRINGS, PickupWorld, phi_message


@pytest.fixture
async def client(https_ca: trustme.CA) -> AsyncIterator[aiohttp.ClientSession]:
    context = ssl.create_default_context()
    https_ca.configure_trust(context)
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context),
                                     cookie_jar=jar) as session:
        yield session


async def _open(world: PickupWorld, client: aiohttp.ClientSession, link: str,
                to: str = PATIENT) -> aiohttp.ClientResponse:
    async with client.post(f"{link}/code") as response:
        assert response.status == 200
    await world.deliver()
    async with client.post(f"{link}/verify", data={"code": world.code(to)},
                           allow_redirects=False) as response:
        return response


def _events(world: PickupWorld, message_id: str) -> list[str]:
    return [e["action"] for e in reversed(
        AuditLog(world.store.engine).entries(message_id=message_id))]


async def test_strict_headers_and_a_cookie_bound_to_the_token(
        pickup_site: PickupWorld, client: aiohttp.ClientSession) -> None:
    world = pickup_site
    world.enqueue_phi()
    await world.deliver()
    link = world.link()
    async with client.get(link) as response:
        headers = response.headers
        assert response.status == 200
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert headers["Cache-Control"] == "no-store"
    response = await _open(world, client, link)
    assert response.status == 303
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=900"):
        assert attribute in cookie
    async with client.get(f"{link}/a/0") as response:
        assert response.status == 200
        assert response.headers["Content-Disposition"] == f'attachment; filename="{PHI_FILE}"'
        assert response.headers["Content-Type"] == "application/pdf"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_wrong_code_then_the_sixth_try_is_locked(
        pickup_site: PickupWorld, client: aiohttp.ClientSession) -> None:
    world = pickup_site
    message_id = world.enqueue_phi()
    await world.deliver()
    link = world.link()
    async with client.post(f"{link}/code"):
        pass
    await world.deliver()
    right = world.code()
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    async with client.post(f"{link}/verify", data={"code": wrong}) as response:
        assert response.status == 403
        assert "not right" in await response.text()
    for _ in range(4):
        async with client.post(f"{link}/verify", data={"code": wrong}):
            pass
    async with client.post(f"{link}/verify", data={"code": right},
                           allow_redirects=False) as response:  # the sixth try
        assert response.status == 403
        assert "locked" in await response.text()
        assert COOKIE not in response.headers.get("Set-Cookie", "")
    async with client.get(f"{link}/message", allow_redirects=False) as response:
        assert response.status != 200
    events = _events(world, message_id)
    assert events.count("pickup_code_failure") == 5 and events.count("pickup_lockout") == 1


async def test_expired_pickup_cannot_be_decrypted_and_says_so(
        pickup_site: PickupWorld, client: aiohttp.ClientSession) -> None:
    world = pickup_site
    message_id = world.enqueue_phi()
    await world.deliver()
    link = world.link()
    assert world.pages is not None
    pickups = world.pages.pickups
    world.clock.advance(timedelta(days=30, seconds=1).total_seconds())
    assert pickups.expire_due(world.clock.now()) == 1
    with world.store.reading() as session:
        row = session.scalars(select(Pickup)).one()
        assert row.state is PickupState.EXPIRED
        assert row.wrapped_key is None and row.ciphertext is None
    with pytest.raises(DecryptionError):
        pickups.open_body(row.id)
    async with client.get(link) as response:
        assert response.status == 404
        assert "expired" in await response.text()
    assert _events(world, message_id)[-1] == "pickup_expired"


async def test_the_page_never_tells_whether_a_token_exists(
        pickup_site: PickupWorld, client: aiohttp.ClientSession) -> None:
    world = pickup_site
    world.enqueue_phi()
    await world.deliver()
    link = world.link()
    token = link.rsplit("/", 1)[1]
    forged = link[: -len(token)] + ("a" if token[0] != "a" else "b") + token[1:]
    unknown = link[: -len(token)] + "a" * 42
    bodies = []
    for url in (forged, unknown, f"{link[: -len(token)]}short"):
        async with client.get(url) as response:
            bodies.append((response.status, await response.text()))
    assert len(set(bodies)) == 1 and bodies[0][0] == 404


async def test_another_recipients_token_opens_nothing_of_theirs(
        pickup_site: PickupWorld, client: aiohttp.ClientSession) -> None:
    world = pickup_site
    world.store.enqueue(dataclasses.replace(_two_recipients(world)), now=world.clock.now())
    await world.deliver()
    mine, theirs = world.link(PATIENT), world.link(OTHER)
    assert mine != theirs
    assert (await _open(world, client, mine)).status == 303
    async with client.get(f"{theirs}/message", allow_redirects=False) as response:
        assert response.status == 303  # my cookie is bound to my token: back to the code
    async with client.post(f"{theirs}/verify", data={"code": world.code(PATIENT)}) as response:
        assert response.status == 403  # my code is not theirs
    # Their code went only to their address.
    assert world.received("Your code", OTHER) == []


def _two_recipients(world: PickupWorld):
    from phigate.queue.store import NewMessage

    return NewMessage(sender="clinic@practice.test", recipients=[PATIENT, OTHER],
                      body=phi_message(), phi_verdict="phi")


async def test_codes_are_rate_limited_per_token(
        pickup_site: PickupWorld, client: aiohttp.ClientSession) -> None:
    world = pickup_site
    world.enqueue_phi()
    await world.deliver()
    link = world.link()
    async with client.post(f"{link}/code") as response:
        assert response.status == 200
    async with client.post(f"{link}/code") as response:
        assert response.status == 429
    await world.deliver()
    assert len(world.received("Your code")) == 1


async def test_second_factor_and_shred_after_download(
        pickup_site: PickupWorld, client: aiohttp.ClientSession) -> None:
    world = pickup_site
    world.settings = dataclasses.replace(world.settings, pickup=dataclasses.replace(
        world.settings.pickup, destroy_after_download=["treatment"]))
    assert world.pages is not None
    world.pages._settings = world.settings
    world.enqueue_phi(phi_message(verify="Date of birth (YYYY-MM-DD); 1980-04-02"))
    await world.deliver()
    link = world.link()
    async with client.get(link) as response:
        assert "Date of birth" in await response.text()
    async with client.post(f"{link}/code"):
        pass
    await world.deliver()
    code = world.code()
    async with client.post(f"{link}/verify", data={"code": code, "answer": "1980-04-03"}
                           ) as response:
        assert response.status == 403
    async with client.post(f"{link}/verify", data={"code": code, "answer": "1980-04-02"},
                           allow_redirects=False) as response:
        assert response.status == 303  # a failed try leaves the code valid
    async with client.get(f"{link}/a/0") as response:
        assert response.status == 200
    async with client.get(f"{link}/message") as response:
        assert response.status == 404  # the class destroys the key once downloaded
    with world.store.reading() as session:
        row = session.scalars(select(Pickup)).one()
        assert row.state is PickupState.SHREDDED and row.wrapped_key is None


async def test_no_phi_in_logs_or_metrics(pickup_site: PickupWorld,
                                         client: aiohttp.ClientSession,
                                         caplog: pytest.LogCaptureFixture) -> None:
    world = pickup_site
    caplog.set_level(logging.DEBUG)
    world.enqueue_phi()
    await world.deliver()
    link = world.link()
    assert (await _open(world, client, link)).status == 303
    async with client.get(f"{link}/message") as response:
        assert "Testpatient" in await response.text()
    assert world.pages is not None
    register_state_collector(world.pages.pickups.counts)
    metrics = METRICS.render()[0].decode()
    assert 'phigate_pickups{state="viewed"} 1.0' in metrics
    assert re.search(r'phigate_pickup_events_total\{event="view"\} [1-9]', metrics)
    # What a log handler can write: the message, its fields and any exception text; not the
    # record's timestamps, whose digits would match a number by chance.
    ours = "\n".join(
        f"{record.getMessage()} {getattr(record, 'phigate_fields', '')} {record.exc_text or ''}"
        for record in caplog.records
        if record.name.startswith("phigate"))  # not the test sink's own log
    assert "pickup_view" in ours
    # Of the exposition, what could carry text: names and label values, not the sample
    # values (a `_created` timestamp such as 1.7962763807441773e+09 holds "4417").
    series = re.sub(r"^([^#].*?) \S+$", r"\1", metrics, flags=re.MULTILINE)
    assert 'phigate_pickups{state="viewed"}' in series
    for text in (ours, series):
        for secret in (*PHI_STRINGS, PHI_FILE, PATIENT, link.rsplit("/", 1)[1]):
            assert secret not in text


async def test_serve_mounts_the_page_on_the_http_listener_only_with_public_url(
        relay_factory, sqlite_only: None) -> None:
    for public_url, expect_csp in (("https://pickup.practice.test", True), ("", False)):
        async with relay_factory(("http",), pickup={"public_url": public_url}) as running:
            port = running.runtime.settings.http.listen.port
            async with aiohttp.ClientSession() as session, session.get(
                    f"http://127.0.0.1:{port}/p/{'a' * 42}") as response:
                assert response.status == 404
                assert ("Content-Security-Policy" in response.headers) is expect_csp
