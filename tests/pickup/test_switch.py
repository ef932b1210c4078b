"""When PHI switches to secure pickup, and the notice it sends (no page here)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import dkim
from helpers.leaks import leaks
from sqlalchemy import select

from phigate.audit.log import AuditLog
from phigate.config import DomainPolicy
from phigate.mta.delivery.dkim import dns_record
from phigate.queue.models import Attempt, MessageClass, Recipient, RecipientState
from phigate.queue.pickup_models import Pickup, PickupState

from .conftest import PATIENT, PHI_FILE, PHI_STRINGS, PRACTICE, PickupWorld


def _recipient(world: PickupWorld, message_id: str) -> Recipient:
    with world.store.reading() as session:
        return session.scalars(select(Recipient).where(Recipient.message_id == message_id)).one()


def _attempts(world: PickupWorld, message_id: str) -> list[Attempt]:
    with world.store.reading() as session:
        return list(session.scalars(select(Attempt).where(Attempt.message_id == message_id)
                                    .order_by(Attempt.id)))


async def test_no_starttls_switches_at_once_and_the_notice_carries_no_phi(
        pickup_world: PickupWorld) -> None:
    world = pickup_world
    message_id = world.enqueue_phi()
    await world.deliver()

    recipient = _recipient(world, message_id)
    assert recipient.state is RecipientState.PICKUP
    attempts = _attempts(world, message_id)
    assert "offers no STARTTLS" in (attempts[0].text or "")
    assert attempts[-1].tls_policy == "pickup" and "secure pickup" in (attempts[-1].text or "")
    # The PHI itself never reached the sink; only the notice did.
    [raw] = world.raw("is waiting")
    assert len(world.sink.messages) == 1
    assert leaks(raw, (*PHI_STRINGS, PHI_FILE)) == []
    notice = world.received("is waiting")[0]
    assert notice["From"].addresses[0].addr_spec == PRACTICE
    assert "Riverside Clinic" in str(notice["Subject"])
    text = notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = notice.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert world.link() in text and world.link() in html
    expires = (world.clock.now() + timedelta(days=30)).strftime("%-d %B %Y")
    assert expires in text
    assert PATIENT not in text  # not even the address in the body
    record = dns_record(world.dkim_key, "rsa").encode()
    assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: record)
    with world.store.reading() as session:
        pickup = session.scalars(select(Pickup)).one()
        assert pickup.state is PickupState.WAITING and pickup.wrapped_key is not None
        assert (pickup.expires_at - world.clock.now()) == timedelta(days=30)
    events = [e["action"] for e in AuditLog(world.store.engine).entries(message_id=message_id)]
    assert events == ["pickup_notice_sent"]


async def test_certificate_failures_wait_after_seconds_before_switching(
        pickup_world: PickupWorld, sink_factory, wrong_name_tls) -> None:
    world = pickup_world
    world.sink = sink_factory(tls=wrong_name_tls)  # a certificate for another name
    world.settings = dataclasses.replace(world.settings, delivery=dataclasses.replace(
        world.settings.delivery, mx_port=world.sink.port))
    message_id = world.enqueue_phi()
    await world.deliver()
    assert _recipient(world, message_id).state is RecipientState.DEFERRED
    world.clock.advance(3601)
    await world.deliver()
    assert _recipient(world, message_id).state is RecipientState.PICKUP
    assert len(world.received("is waiting")) == 1


async def test_a_class_or_domain_without_pickup_keeps_waiting(pickup_world: PickupWorld) -> None:
    world = pickup_world
    marketing = world.enqueue_phi(message_class=MessageClass.MARKETING)
    await world.deliver()
    assert _recipient(world, marketing).state is RecipientState.DEFERRED
    delivery = dataclasses.replace(world.settings.delivery,
                                   domains={"example.test": DomainPolicy(pickup="off")})
    world.settings = dataclasses.replace(world.settings, delivery=delivery)
    treatment = world.enqueue_phi()
    await world.deliver()
    assert _recipient(world, treatment).state is RecipientState.DEFERRED
    assert world.received("is waiting") == []


async def test_notice_scans_none(pickup_world: PickupWorld, thread_scanner) -> None:
    world = pickup_world
    world.enqueue_phi()
    await world.deliver()
    [raw] = world.raw("is waiting")
    result = thread_scanner.scanner.scan_message(raw)
    assert result.verdict == "none", result.to_json(include_text=True)


async def test_shredding_the_message_destroys_the_pickup_key(pickup_world: PickupWorld) -> None:
    """``queue delete`` and retention crypto-shred through transitions.shred_bodies."""
    world = pickup_world
    message_id = world.enqueue_phi()
    await world.deliver()
    world.store.destroy_body(message_id)
    with world.store.reading() as session:
        pickup = session.scalars(select(Pickup)).one()
        assert pickup.state is PickupState.DELETED
        assert pickup.wrapped_key is None and pickup.ciphertext is None
