# ruff: noqa: F811 - the fixtures imported from test_scheduler are parameters here
"""Issue 14 findings 3-4: a poison header held a delivery thread in dkimpy for minutes;
messages that could not be signed were parked corrupt after three DKIM errors with no DSN,
no metric (``dkim_signing_failures_total`` stayed 0) and no alert.

Now the stored header block gets a linear, bounded check before signing: too big or
malformed is bounced at once with a DSN (5.3.4 / 5.6.0); a message parked corrupt sends
the sender a 5.3.0 DSN; both quote nothing of the message and move
``phigate_messages_unprocessable_total{reason}``. Over a real SMTP sink, both databases.
"""

from __future__ import annotations

import asyncio
import time

from phigate.mta.delivery.dkim import DkimError, DkimSigner, generate_key
from phigate.mta.delivery.poison import Unprocessable, check_header_block
from phigate.mta.delivery.scheduler import DeliveryScheduler
from phigate.observability.labels import UnprocessableReasonLabel
from phigate.observability.metrics import METRICS
from phigate.queue.models import MessageState, RecipientState

from .test_scheduler import BODY, world  # noqa: F401 - a fixture

SECRETS = (b"Your appointment", b"SECRET-BODY-MARKER", b"MRI", b"Clinic <")


def counted(name: str, **labels: str) -> float:
    return METRICS.registry.get_sample_value(name, labels) or 0.0


def signer() -> DkimSigner:
    return DkimSigner(domains=["practice.test"], selector="s1", rsa_key=generate_key("rsa"))


def poison_header() -> bytes:
    # 2 M continuation lines, 8 MB: dkimpy's header parse is quadratic on it.
    return (b"From: Clinic <clinic@practice.test>\r\nTo: pat@example.test\r\n"
            b"Subject: Your appointment\r\nX-Long: a\r\n" + b" b\r\n" * 2_000_000
            + b"\r\nDear patient, SECRET-BODY-MARKER\r\n")


def test_the_check_is_linear_and_names_each_shape() -> None:
    started = time.process_time()
    assert check_header_block(poison_header()) is Unprocessable.TOO_BIG
    assert time.process_time() - started < 2.0
    assert check_header_block(BODY) is None
    for shape in (b"From: a@practice.test\r\nnot a header line\r\n\r\nbody\r\n",
                  b"From: a@practice.test\r\nX Bad: 1\r\n\r\nbody\r\n",
                  b"From\t: a@practice.test\r\n\r\nbody\r\n",
                  b"From: a@practice.test\r\nX-\xe9t\xe9: 1\r\n\r\nbody\r\n",
                  b"From: a@practice.test\r\nSubject: no blank line\r\nbody\r\n"):
        assert check_header_block(shape) is Unprocessable.MALFORMED, shape
    assert check_header_block(b"X-A: " + b"a" * 40_000 + b"\r\n\r\n") is Unprocessable.TOO_BIG
    assert {r.value for r in Unprocessable} == set(UnprocessableReasonLabel.__args__)  # type: ignore[attr-defined]


async def test_a_poison_header_is_bounced_at_once_never_signed(world) -> None:
    before = counted("phigate_messages_unprocessable_total", reason="too_big")
    message_id = world.enqueue("pat@example.test", body=poison_header())
    scheduler = DeliveryScheduler(world.settings(), world.store, clock=world.clock,
                                  signer=signer())
    await asyncio.wait_for(scheduler.run_until_empty(), 30)
    assert [r.state for r in world.recipients(message_id)] == [RecipientState.BOUNCED]
    assert world.sink.delivered_to("pat@example.test") == []
    [dsn] = world.dsns()
    assert "5.3.4" in dsn.as_string() and "pat@example.test" in dsn.as_string()
    raw = world.sink.messages[0].content
    assert not any(secret in raw for secret in SECRETS)
    assert counted("phigate_messages_unprocessable_total", reason="too_big") == before + 1


async def test_a_malformed_header_is_bounced_with_5_6_0(world) -> None:
    message_id = world.enqueue(body=b"From: clinic@practice.test\r\nX Bad: 1\r\n"
                                    b"Subject: Your appointment\r\n\r\nSECRET-BODY-MARKER\r\n")
    await DeliveryScheduler(world.settings(), world.store, clock=world.clock,
                            signer=signer()).run_until_empty()
    assert [r.state for r in world.recipients(message_id)] == [RecipientState.BOUNCED]
    [dsn] = world.dsns()
    assert "5.6.0" in dsn.as_string()
    assert not any(secret in world.sink.messages[0].content for secret in SECRETS)


class _FailingSigner:
    """Fails on the patient's message only: the DSN about it must go out (signed by a
    working key it would be; failing too it would count three failures of its own)."""

    def sign(self, message: bytes) -> bytes:
        if b"SECRET-BODY-MARKER" in message:
            raise DkimError("DKIM rsa-sha256 signing failed: ValueError", "rsa")
        return message


async def test_dkim_errors_park_it_with_a_dsn_and_count_one_per_failure(world) -> None:
    failures = counted("phigate_dkim_signing_failures_total", algorithm="rsa")
    parked = counted("phigate_messages_unprocessable_total", reason="dkim")
    message_id = world.enqueue()
    await DeliveryScheduler(world.settings(), world.store, clock=world.clock,
                            signer=_FailingSigner()).run_until_empty()
    assert world.store.get_message(message_id).state is MessageState.CORRUPT
    # Three attempts, three failures, one message parked.
    assert counted("phigate_dkim_signing_failures_total", algorithm="rsa") == failures + 3
    assert counted("phigate_messages_unprocessable_total", reason="dkim") == parked + 1
    [dsn] = world.dsns()
    assert "5.3.0" in dsn.as_string() and "could not be processed" in dsn.as_string()
    assert not any(secret in world.sink.messages[0].content for secret in SECRETS)


class _StuckSigner:
    """Signing the patient's message never ends (a quadratic parse, a stuck library)."""

    def sign(self, message: bytes) -> bytes:
        if b"SECRET-BODY-MARKER" in message:
            time.sleep(20)
        return message


async def test_a_stuck_prepare_step_is_bounded_and_parked_the_second_time(world) -> None:
    timeouts = counted("phigate_messages_unprocessable_total", reason="timeout")
    message_id = world.enqueue()
    scheduler = DeliveryScheduler(world.settings(prepare_timeout_seconds=0.5), world.store,
                                  clock=world.clock, signer=_StuckSigner())
    started = time.monotonic()
    await asyncio.wait_for(scheduler.run_until_empty(), 15)
    assert time.monotonic() - started < 10  # two bounded tries, not two 20 s signings
    view = world.store.get_message(message_id)
    assert view.state is MessageState.CORRUPT
    assert view.recipients[0].state is RecipientState.QUEUED  # parked, not lost
    assert counted("phigate_messages_unprocessable_total", reason="timeout") == timeouts + 1
    [dsn] = world.dsns()
    assert "5.3.0" in dsn.as_string()
    assert not any(secret in world.sink.messages[0].content for secret in SECRETS)
