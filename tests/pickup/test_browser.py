"""The pickup page in a real browser: Debian's chromium through Playwright, over real HTTPS.

The browser trusts exactly the test certificate's key (``--ignore-certificate-errors-spki-list``),
works at a phone's size, and runs the whole flow: notice at the sink, link, code mail at the
sink, code, message, attachment, reply at the practice's sink, logout, then a replayed cookie.
Screenshots go to the test's tmp dir (and to docs/pickup/ with PHIGATE_DOCS_SCREENSHOTS=1).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import trustme
from helpers.leaks import leaks

from phigate.audit.log import AuditLog
from phigate.audit.verify import verify_chain

from .conftest import (
    PATIENT,
    PHI_BODY,
    PHI_FILE,
    PHI_STRINGS,
    PRACTICE,
    PickupWorld,
    phi_message,
    spki_hash,
)

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
HOSTILE_HTML = ("<p>Results attached.</p>"
                '<img src="http://203.0.113.9/track.png" alt="x">'
                "<script>document.title='ran';fetch('http://203.0.113.9/js')</script>"
                '<p style="background:url(http://203.0.113.9/css.png)" '
                "onclick=\"fetch('http://203.0.113.9/click')\">" + PHI_BODY + "</p>")
REPLY = "Thank you, I got it and will call the front desk."
DOCS = Path(__file__).resolve().parents[2] / "docs" / "pickup"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: the browser run is the slow part, the store is tested on both."""
    return f"sqlite:///{tmp_path / 'queue.db'}"


class Shots:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    async def take(self, page: Any, name: str) -> None:
        path = self.directory / f"{len(self.taken) + 1}-{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        if os.environ.get("PHIGATE_DOCS_SCREENSHOTS"):
            DOCS.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, DOCS / path.name)


async def _browser(playwright: Any, cert: trustme.LeafCert) -> Any:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/setup --test installs it)")
    pin = spki_hash(cert.cert_chain_pems[0].bytes())
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--ignore-certificate-errors-spki-list={pin}"])


async def test_pickup_in_a_real_browser(pickup_site: PickupWorld, https_cert: trustme.LeafCert,
                                        tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    world, shots = pickup_site, Shots(tmp_path / "artefacts")
    message_id = world.enqueue_phi(phi_message(html=HOSTILE_HTML))
    await world.deliver()
    link = world.link()
    assert link.startswith(world.base_url)
    async with async_playwright() as playwright:
        browser = await _browser(playwright, https_cert)
        context = await browser.new_context(viewport={"width": 390, "height": 780},
                                            is_mobile=True, accept_downloads=True)
        page = await context.new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        await page.goto(link)
        assert "Riverside Clinic" in await page.inner_text("body")
        await shots.take(page, "code-page")
        await page.click("#send-code")
        await world.deliver()
        await shots.take(page, "code-sent")
        await page.fill("#code", world.code())
        await page.click("#open")
        await page.wait_for_selector("#text")
        body = await page.inner_text("body")
        assert PHI_BODY in body and PHI_FILE in body
        assert "Riverside Clinic sent you this message" in body
        assert await page.title() != "ran"
        assert await page.locator("#html img, #html script").count() == 0
        await shots.take(page, "message")
        async with page.expect_download() as download_info:
            await page.click(f"text={PHI_FILE}")
        download = await download_info.value
        assert download.suggested_filename == PHI_FILE
        assert Path(await download.path()).read_bytes().startswith(b"%PDF-1.4")
        await page.fill("#reply", REPLY)
        await page.click("#send-reply")
        assert "Reply sent" in await page.inner_text("h1")
        await shots.take(page, "reply-sent")
        await page.goto(f"{link}/message")
        assert await page.locator("#send-reply").count() == 0  # one reply only
        cookies = await context.cookies()
        await page.click("#logout")
        await shots.take(page, "closed")
        await context.add_cookies(cookies)  # replay the session cookie after logout
        await page.goto(f"{link}/message")
        assert PHI_BODY not in await page.inner_text("body")
        assert await page.locator("#code").count() == 1
        await _without_javascript(browser, link)
        await browser.close()
    outside = [url for url in requests if not url.startswith(world.base_url)]
    assert outside == [], outside
    assert all(shot.stat().st_size > 1000 for shot in shots.taken)

    await world.deliver()
    [reply] = world.received("Re: ", to=PRACTICE)
    assert REPLY in reply.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert reply["Reply-To"].addresses[0].addr_spec == PATIENT
    assert reply["From"].addresses[0].addr_spec == PRACTICE  # never sent as the patient
    assert reply["DKIM-Signature"] is not None
    for kind in ("is waiting", "Your code"):
        for raw in world.raw(kind):
            assert leaks(raw, (*PHI_STRINGS, PHI_FILE)) == []
    actions = [e["action"] for e in reversed(
        AuditLog(world.store.engine).entries(message_id=message_id))]
    assert actions == ["pickup_notice_sent", "pickup_code_requested", "pickup_view",
                       "pickup_download", "pickup_reply", "pickup_view", "pickup_logout"]
    with world.store.reading() as session:
        assert verify_chain(session).broken is None
    _queue_show_lists(world, message_id, actions)


def _queue_show_lists(world: PickupWorld, message_id: str, actions: list[str]) -> None:
    """``phigate queue show`` (and the TUI's message screen, same service) list the steps."""
    import dataclasses
    import io
    from contextlib import redirect_stdout

    from phigate.admin import AdminService, Identity
    from phigate.cli.queue_cmd import _print_detail
    from phigate.config import AdminSettings

    settings = dataclasses.replace(world.settings, admin=AdminSettings(viewers=["vera"]))
    service = AdminService(world.store, AuditLog(world.store.engine), settings,
                           identity=Identity("vera", frozenset()))
    detail = service.message(message_id)
    assert [e["action"] for e in detail.pickup_events] == actions
    assert all(e["ip"] == "127.0.0.1" for e in detail.pickup_events[1:])
    out = io.StringIO()
    with redirect_stdout(out):
        _print_detail(detail)
    assert "secure pickup" in out.getvalue() and "download from 127.0.0.1" in out.getvalue()
    assert "pickup" in out.getvalue().split("recipients", 1)[1].split("attempts", 1)[0]


async def _without_javascript(browser: Any, link: str) -> None:
    """Readable and usable without JavaScript: the forms are plain HTML."""
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto(link)
    assert await page.locator("#send-code").count() == 1
    assert await page.locator("#code").count() == 1
    await context.close()
