"""When a PHI recipient switches from delivery to secure pickup, and the switch itself.

A recipient switches when all of these hold: ``[pickup] public_url`` is set; the message
carries PHI; its class may use pickup (``[pickup] classes``, or the destination's
``pickup_classes``) and the destination does not say ``pickup = "off"``; the attempt failed
for TLS (our policy refused the route or the handshake, code 454); and either the failures
have lasted ``[pickup] after_seconds`` or the route is known to be unacceptable for good
(no STARTTLS offered, the host is outside the MTA-STS policy, DNSSEC/TLSA failed).

The switch (run in the scheduler's thread, holding the recipient's lease): a pickup row with
the body re-sealed under its own key; the PHI-free notice into the queue; the recipient
marked ``pickup`` with an attempt row saying so; the audit entry, all before the lease goes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from phigate.config import Settings
from phigate.pickup.content import second_factor
from phigate.pickup.mail import Practice, notice
from phigate.pickup.store import PickupEvent, PickupStore
from phigate.queue import transitions
from phigate.queue.models import Attempt, MessageClass, Recipient, RecipientState
from phigate.queue.pickup_models import Pickup, PickupState
from phigate.queue.store import ClaimedRecipient, NewMessage, SqlQueueStore
from phigate.queue.transitions import AttemptRecord

_NO_ROUTE_MARKERS = ("offers no STARTTLS", "MTA-STS", "DNSSEC", "TLSA")
SWITCH_TEXT = "switched to secure pickup: no acceptable TLS route; notice sent"


def link_for(settings: Settings, token: str) -> str:
    return f"{settings.pickup.public_url.rstrip('/')}/p/{token}"


def practice_of(settings: Settings, sender: str) -> Practice:
    return Practice(name=settings.pickup.practice_name or settings.server.domain,
                    address=settings.pickup.from_address or sender,
                    hostname=settings.server.hostname)


class PickupSwitch:
    def __init__(self, settings: Settings, store: SqlQueueStore) -> None:
        self._settings = settings
        self._pickup = settings.pickup
        self._store = store
        self.pickups = PickupStore(store)

    @classmethod
    def maybe(cls, settings: Settings, store: object) -> PickupSwitch | None:
        if not settings.pickup.public_url or not isinstance(store, SqlQueueStore):
            return None
        return cls(settings, store)

    def wanted(self, claimed: ClaimedRecipient, code: int, text: str, remote: bool,
               now: datetime) -> bool:
        if not claimed.phi or remote or code != 454 or not self._enabled(claimed):
            return False
        if any(marker in text for marker in _NO_ROUTE_MARKERS):
            return True  # what `phigate tls check` would say: no acceptable route at all
        waited = (now - claimed.created_at).total_seconds()
        return waited >= self._pickup.after_seconds

    def _enabled(self, claimed: ClaimedRecipient) -> bool:
        domain = self._settings.delivery.domains.get(claimed.domain)
        if domain is not None and domain.pickup == "off":
            return False
        classes = (domain.pickup_classes if domain is not None and domain.pickup_classes
                   else self._pickup.classes)
        return claimed.message_class in classes

    def switch(self, claimed: ClaimedRecipient, owner: str, now: datetime) -> bool:
        """Move one leased recipient to pickup; False if the lease was lost meanwhile."""
        body = self._store.read_body(claimed.message_id)
        token = self.pickups.keys.new_token()
        sealed = self.pickups.seal(body, token_hash=token.token_hash)
        expires = now + timedelta(days=self._pickup.ttl_days)
        factor = second_factor(body)
        practice = practice_of(self._settings, claimed.sender)
        # The notice is queued first: a crash before the commit below sends a second
        # notice on the next attempt (whose link works), never none.
        notice_id = self._store.enqueue(NewMessage(
            sender=practice.address, recipients=[claimed.address],
            body=notice(practice, to=claimed.address, link=link_for(self._settings, token.token),
                        expires=expires, now=now),
            message_class=MessageClass.OPERATIONS), now=now)
        with self._store.writing() as session:
            recipient = session.get(Recipient, claimed.recipient_id)
            if recipient is None or recipient.lease_owner != owner:
                return False
            row = Pickup(token_hash=token.token_hash, message_id=claimed.message_id,
                         recipient_id=claimed.recipient_id, address=claimed.address,
                         sender=claimed.sender, message_class=claimed.message_class,
                         state=PickupState.WAITING, created_at=now, expires_at=expires,
                         key_id=sealed.key_id, wrapped_key=sealed.wrapped_key,
                         nonce=sealed.nonce, ciphertext=sealed.ciphertext,
                         question=factor[0] if factor else None, codes_sent=0, failures=0)
            session.add(row)
            # The attempt history shows the switch: one more attempt row, no host.
            session.add(Attempt(**transitions.attempt_row(
                claimed.recipient_id, claimed.message_id,
                AttemptRecord(started_at=now, host=None, code=None, text=SWITCH_TEXT,
                              tls_policy="pickup"))))
            recipient.attempts += 1
            session.flush()
            self.pickups.record(session, PickupEvent.NOTICE_SENT, row, None,
                                {"notice": notice_id, "expires": expires.isoformat()})
            return transitions.fail(session, claimed.recipient_id, owner,
                                    state=RecipientState.PICKUP, code=None, text=SWITCH_TEXT,
                                    now=now)
