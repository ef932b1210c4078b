"""End to end: PHI that waits for TLS shows on /metrics
(``phigate_phi_waiting_for_tls_recipients``).

The gauge used to be computed from the deferral text with a prefix delivery never wrote, so
it was always 0 and its alert could never fire; each layer's test passed on its own fixture.
Here delivery, the store, the dashboard query and the HTTP exposition run for real.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
from helpers.net import free_port
from helpers.smtp_sink import SmtpSink
from helpers.wait import wait_until

from observability.test_http_metrics import sample
from phigate.queue.models import DeferReason, Recipient, RecipientState
from phigate.queue.store import NewMessage

GAUGE = "phigate_phi_waiting_for_tls_recipients"
BODY = b"From: ehr@practice.test\r\nTo: jane@example.org\r\nSubject: results\r\n\r\nMRN 1234\r\n"


async def test_phi_deferred_for_tls_moves_the_waiting_for_tls_gauge(
    relay_factory: Callable[..., Any],
) -> None:
    plain = SmtpSink(free_port(), tls_context=None).start()  # no STARTTLS on offer
    try:
        async with relay_factory(("http", "delivery"), delivery={
                "smarthost": f"127.0.0.1:{plain.port}", "poll_interval_seconds": 0.1}) as running:
            store = running.runtime.store
            metrics_url = f"http://127.0.0.1:{running.runtime.settings.http.listen.port}/metrics"

            async def scrape() -> str:
                async with aiohttp.ClientSession() as http, http.get(metrics_url) as response:
                    return await response.text()

            assert sample(await scrape(), GAUGE) == 0
            phi = store.enqueue(NewMessage(sender="ehr@practice.test",
                                           recipients=["jane@example.org"], body=BODY,
                                           phi_verdict="phi"))
            store.enqueue(NewMessage(sender="ehr@practice.test", recipients=["joe@example.org"],
                                     body=BODY.replace(b"MRN 1234", b"see you")))

            async def waiting():
                return sample(await scrape(), GAUGE) == 1

            await wait_until(waiting, what=f"{GAUGE} == 1")
            [recipient] = store.get_message(phi).recipients
            assert recipient.state is RecipientState.DEFERRED
            assert "TLS required for PHI" in (recipient.last_text or "")
            with store.reading() as session:
                row = session.get(Recipient, recipient.id)
                assert row is not None and row.defer_reason is DeferReason.TLS_REQUIRED
            assert all("jane@example.org" not in m.rcpt_tos for m in plain.messages)
    finally:
        plain.stop()
