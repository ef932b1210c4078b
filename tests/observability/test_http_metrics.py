"""/metrics and /healthz of a running relay, read with a real HTTP client."""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp
import aiosmtplib
from helpers.tls_sink import TlsSink
from helpers.wait import wait_until


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
        if found == wanted:
            return float(match.group(3))
    return 0.0


async def test_metrics_move_and_never_carry_addresses(
    relay_factory: Callable[..., Any], client_tls: ssl.SSLContext
) -> None:
    async with relay_factory(("smtp", "http")) as running:
        settings = running.runtime.settings
        base = f"http://127.0.0.1:{settings.http.listen.port}"
        running.runtime.accounts.add("clinic", "pw", senders=["practice.test"],
                                     classes=["treatment"])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
                assert (await response.json())["status"] == "ok"
            async with http.get(f"{base}/metrics") as response:
                before = await response.text()

            async with aiosmtplib.SMTP(hostname="127.0.0.1",
                                       port=settings.submission.listen.port,
                                       tls_context=client_tls, start_tls=True) as client:
                await client.login("clinic", "pw")
                await client.sendmail("ehr@practice.test", ["jane.patient@example.org"],
                                      b"From: ehr@practice.test\r\nSubject: hi\r\n\r\nok\r\n")
                try:
                    await client.auth_plain("clinic", "wrong")
                except aiosmtplib.SMTPException:
                    pass

            async with http.get(f"{base}/metrics") as response:
                after = await response.text()

    name = "phigate_messages_received_total"
    assert sample(after, name, result="accepted") == sample(before, name, result="accepted") + 1
    assert sample(after, "phigate_queue_recipients", state="queued") == 1
    assert sample(after, "phigate_queue_messages", state="active") == 1
    assert sample(after, "phigate_listener_up", listener="submission") == 1
    assert "jane.patient" not in after and "@" not in after.replace("# ", "")


async def test_delivery_counters_move_during_a_delivery_run(
    relay_factory: Callable[..., Any], client_tls: ssl.SSLContext, tls_sink: TlsSink,
) -> None:
    sink = tls_sink.sink
    delivered = ("phigate_recipients_total", {"outcome": "delivered", "class": "treatment"})
    async with relay_factory(("smtp", "http", "delivery"), delivery=tls_sink.delivery()) as running:
        settings = running.runtime.settings
        running.runtime.accounts.add("clinic", "pw", senders=["practice.test"],
                                     classes=["treatment"])
        metrics_url = f"http://127.0.0.1:{settings.http.listen.port}/metrics"
        async with aiohttp.ClientSession() as http:
            async with http.get(metrics_url) as response:
                before = await response.text()
            async with aiosmtplib.SMTP(hostname="127.0.0.1",
                                       port=settings.submission.listen.port,
                                       tls_context=client_tls, start_tls=True) as client:
                await client.login("clinic", "pw")
                for index in range(3):
                    await client.sendmail(
                        "ehr@practice.test", [f"patient{index}@example.org"],
                        b"From: ehr@practice.test\r\nSubject: hi\r\n\r\nok\r\n")
            async def scraped_after_three() -> str:
                # The outcome is recorded after the sink's reply: wait for the counter.
                async with http.get(metrics_url) as response:
                    text = await response.text()
                moved = sample(text, delivered[0], **delivered[1]) - sample(
                    before, delivered[0], **delivered[1])
                return text if moved >= 3 else ""

            after: str = await wait_until(scraped_after_three,
                                          what="three delivered recipients")

    assert len(sink.messages) == 3
    assert sample(after, delivered[0], **delivered[1]) - sample(before, delivered[0],
                                                               **delivered[1]) == 3
    attempts = sum(sample(text, "phigate_delivery_attempts_total", outcome="success", tls=tls)
                   * sign for text, sign in ((after, 1), (before, -1))
                   for tls in ("none", "encrypted", "verified"))
    assert attempts == 3
    assert "patient0" not in after and "example.org" not in after
