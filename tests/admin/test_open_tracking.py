"""Privacy-first open tracking: the pixel only in opted-in marketing without PHI, fetched over
real HTTP by mail clients and prefetching proxies, counted as aggregates that name nobody."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from phigate.cli.main import main
from phigate.config import settings_from_mapping
from phigate.http.open_pixel import add_open_routes
from phigate.mta.delivery.decorate import decorate
from phigate.policy.open_tracking import (
    PIXEL_GIF,
    FetchKind,
    OpenStore,
    PixelTokens,
    classify_fetch,
)
from phigate.policy.tokens import TokenSigner
from phigate.queue.models import AuditEvent, MessageClass
from phigate.queue.policy_models import CampaignOpens, OpenHour, OpenMark
from phigate.runtime import Runtime

from .test_cli import config  # noqa: F401  (fixture)

SIGNER = TokenSigner(b"k" * 32)
SETTINGS = settings_from_mapping({
    "server": {"domain": "practice.test"},
    "http": {"public_url": "https://relay.practice.test"},
    "policy": {"postal_address": "Practice, 1 Main St, Springfield"},
})
HTML_MAIL = (b"From: news@practice.test\r\nTo: fan@example.org\r\nSubject: Flu shots\r\n"
             b"X-Phigate-Track-Opens: yes\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
             b"--b\r\nContent-Type: text/plain\r\n\r\nFlu shots are here.\r\n"
             b"--b\r\nContent-Type: text/html\r\n\r\n<html><body><p>Flu shots are here.</p>"
             b"</body></html>\r\n--b--\r\n")
PIXEL = re.compile(r'<img src="(https://relay\.practice\.test/o/[^"]+\.gif)"')
THUNDERBIRD = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.4.0"
GMAIL_PROXY = ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
               "(via ggpht.com GoogleImageProxy)")
APPLE_MPP = "Mozilla/5.0"


def _pixels(body: bytes) -> list[str]:
    parsed = message_from_bytes(body, policy=policy.default)
    found = []
    for part in parsed.walk():
        if part.get_content_maintype() == "text":
            found += [(part.get_content_subtype(), url)
                      for url in PIXEL.findall(part.get_content())]
    assert all(kind == "html" for kind, _ in found), found  # never in a text part
    return [url for _, url in found]


def _decorate(body: bytes = HTML_MAIL, *, recipient: str = "fan@example.org",
              message_class: MessageClass = MessageClass.MARKETING, phi: bool = False,
              settings: object = SETTINGS) -> list[str]:
    out = decorate(body, recipient=recipient, sender="news@practice.test",
                   message_class=message_class, campaign_id="flu-2026",
                   settings=settings, signer=SIGNER, phi=phi)  # type: ignore[arg-type]
    return _pixels(out.body)


def test_pixel_only_in_opted_in_marketing_without_phi_over_https() -> None:
    [url] = _decorate()
    assert url.startswith("https://relay.practice.test/o/flu-2026/")
    assert "fan" not in url and "example.org" not in url
    assert _decorate(recipient="fan@example.org") != [url]  # a fresh nonce per copy
    assert _decorate(message_class=MessageClass.TREATMENT) == []
    assert _decorate(phi=True) == []  # marketing under a HIPAA authorization: never tracked
    assert _decorate(HTML_MAIL.replace(b"X-Phigate-Track-Opens: yes\r\n", b"")) == []
    assert _decorate(HTML_MAIL.replace(b"Track-Opens: yes", b"Track-Opens: no")) == []
    plain_http = settings_from_mapping({"server": {"domain": "practice.test"},
                                        "http": {"public_url": "http://relay.practice.test"},
                                        "policy": {"postal_address": "1 Main St"}})
    assert _decorate(settings=plain_http) == []


@pytest.mark.parametrize(("agent", "kind"), [
    (THUNDERBIRD, FetchKind.OPEN), (GMAIL_PROXY, FetchKind.PROXY), (APPLE_MPP, FetchKind.PROXY),
    ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
     FetchKind.PROXY), (None, FetchKind.OPEN)])
def test_prefetching_proxies_are_told_apart(agent: str | None, kind: FetchKind) -> None:
    assert classify_fetch(agent) is kind


@pytest.fixture
async def pixel_server(runtime: Runtime, unused_tcp_port: int) -> AsyncIterator[str]:
    app = web.Application()
    add_open_routes(app, tokens=PixelTokens.for_signer(SIGNER), opens=OpenStore(runtime.store))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        yield f"http://127.0.0.1:{unused_tcp_port}"
    finally:
        await runner.cleanup()


async def _fetch(base: str, url: str, agent: str) -> aiohttp.ClientResponse:
    path = url.removeprefix("https://relay.practice.test")
    async with aiohttp.ClientSession() as http, http.get(
            base + path, headers={"User-Agent": agent}) as response:
        await response.read()
        return response


async def test_fetches_over_http_count_unique_opens_and_proxies_apart(
        runtime: Runtime, pixel_server: str) -> None:
    [reader] = _decorate(recipient="reader@example.org")
    [gmail] = _decorate(recipient="gmail-user@gmail.example")
    [apple] = _decorate(recipient="iphone@icloud.example")
    for url, agent in ((reader, THUNDERBIRD), (reader, THUNDERBIRD), (gmail, GMAIL_PROXY),
                       (apple, APPLE_MPP)):
        response = await _fetch(pixel_server, url, agent)
        assert response.status == 200 and response.content_type == "image/gif"
        assert "Set-Cookie" not in response.headers
        assert "no-store" in response.headers["Cache-Control"]
    forged = reader[:-10] + "aaaaaa.gif"
    assert (await _fetch(pixel_server, forged, THUNDERBIRD)).status == 200  # same GIF
    other_campaign = reader.replace("/o/flu-2026/", "/o/spring/")
    assert (await _fetch(pixel_server, other_campaign, THUNDERBIRD)).status == 200
    summary = OpenStore(runtime.store).summary("flu-2026")
    assert summary is not None
    assert (summary.unique_opens, summary.proxy_fetches, summary.fetches) == (1, 2, 4)
    assert OpenStore(runtime.store).summary("spring") is None
    assert sum(opens for opens, _ in summary.by_hour.values()) == 1
    async with aiohttp.ClientSession() as http, http.get(
            pixel_server + reader.removeprefix("https://relay.practice.test")) as response:
        assert await response.read() == PIXEL_GIF


async def test_the_store_names_nobody_and_closing_destroys_the_set(
        runtime: Runtime, pixel_server: str) -> None:
    urls = [_decorate(recipient=f"patient{n}@mail.example")[0] for n in range(3)]
    for url in urls:
        await _fetch(pixel_server, url, THUNDERBIRD)
    with runtime.store.reading() as session:
        rows = [*session.scalars(select(CampaignOpens)), *session.scalars(select(OpenMark)),
                *session.scalars(select(OpenHour))]
        dumped = repr([{c: getattr(r, c) for c in r.__table__.columns.keys()} for r in rows])
        marks = session.scalars(select(OpenMark.digest)).all()
    assert len(marks) == 3
    for secret in ("patient", "mail.example", "127.0.0.1", "Thunderbird", "Mozilla"):
        assert secret not in dumped
    tokens = {url.rsplit("/", 1)[1].removesuffix(".gif") for url in urls}
    assert not any(token in dumped for token in tokens)
    store = OpenStore(runtime.store)
    assert store.close("flu-2026") == 3
    with runtime.store.reading() as session:
        assert session.scalars(select(OpenMark)).all() == []
        assert session.get(CampaignOpens, "flu-2026").hash_key is None  # type: ignore[union-attr]
    await _fetch(pixel_server, urls[0], THUNDERBIRD)
    await _fetch(pixel_server, _decorate(recipient="late@mail.example")[0], THUNDERBIRD)
    after = store.summary("flu-2026")
    assert after is not None and after.closed and after.unique_opens == 3  # nothing counted


def test_campaign_show_gives_the_estimated_open_rate_and_close_is_audited(
        config: Path, runtime: Runtime, enqueue: object,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    from .test_campaign_show import _campaign

    _campaign(runtime, enqueue)  # type: ignore[arg-type]
    store = OpenStore(runtime.store)
    tokens = PixelTokens.for_signer(SIGNER)
    for n in range(250):
        url = tokens.url("https://relay.practice.test", "flu-2026")
        nonce = tokens.nonce("flu-2026", url.rsplit("/", 1)[1].removesuffix(".gif"))
        assert nonce is not None
        store.record("flu-2026", nonce, FetchKind.PROXY if n % 5 == 0 else FetchKind.OPEN)
    assert main(["--config", str(config), "campaign", "show", "flu-2026", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["opens"] == {"estimated": True, "unique_opens": 200,
                              "estimated_open_rate": round(200 / 996, 6),
                              "proxy_fetches": 50, "fetches": 250, "tracking_closed": False}
    assert sum(hour["estimated_opens"] for hour in shown["series"]) == 200
    assert main(["--config", str(config), "campaign", "show", "flu-2026"]) == 0
    text = capsys.readouterr().out
    assert "200  estimated unique opens (20.1% of delivered); 50 proxy fetches" in text
    assert main(["--config", str(config), "campaign", "close", "flu-2026"]) == 0
    assert "250 digest(s)" in capsys.readouterr().out
    with runtime.store.reading() as session:
        entry = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "campaign.close_tracking")).one()
    assert entry.detail == {"campaign": "flu-2026", "digests_destroyed": 250}


async def test_serve_mounts_the_pixel_on_the_http_listener(
        relay_factory: Any, tmp_path: Path) -> None:
    key_file = tmp_path / "token.key"
    key_file.write_bytes(b"t" * 32)
    async with relay_factory(("http",), policy={"token_key_file": str(key_file)},
                             http={"public_url": "https://relay.practice.test"}) as running:
        settings = running.runtime.settings
        signer = TokenSigner.from_key_file(key_file)
        out = decorate(HTML_MAIL, recipient="fan@example.org", sender="news@practice.test",
                       message_class=MessageClass.MARKETING, campaign_id="flu-2026",
                       settings=settings, signer=signer)
        [url] = _pixels(out.body)
        base = f"http://127.0.0.1:{settings.http.listen.port}"
        assert (await _fetch(base, url, THUNDERBIRD)).status == 200
        summary = OpenStore(running.runtime.store).summary("flu-2026")
        assert summary is not None and summary.unique_opens == 1
