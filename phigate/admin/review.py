"""The final notice to the sender after an admin's review (issue 13 item 5).

A message held for review (quarantined, held, awaiting approval) got a "held" notice when
its class asks for one (:mod:`phigate.mta.delivery.review_notices`), and so does active mail
an admin puts on hold. When an admin releases it the sender hears "released"; when an admin
deletes it, "rejected". (``quarantine reject``
and ``queue bounce`` send their own failure DSN.)

A campaign's messages wait as a group: approving (or resuming) a campaign releases every
message that waited for it, and pausing one holds its queued messages, so each of those
senders hears "released" or "held" as if an admin had acted on the message alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from phigate.config import Settings
from phigate.mta.delivery.review_notices import Review, ReviewedMessage, queue_review_notice
from phigate.queue.models import PENDING_RECIPIENT_STATES, MessageState, RecipientState
from phigate.queue.store import SqlQueueStore

#: States a message waits in for a person's review.
REVIEW_STATES = frozenset({MessageState.HELD, MessageState.QUARANTINED,
                           MessageState.AWAITING_APPROVAL})
#: The admin actions that start or end a review, and what the sender is told.
_OUTCOMES = {"queue.hold": Review.HELD, "queue.release": Review.RELEASED,
             "queue.delete": Review.REJECTED}


def needs_original(action: str) -> bool:
    """The action starts or ends a review: read the body first (only its Message-ID is
    used)."""
    return action in _OUTCOMES


def notify_after_review(store: SqlQueueStore, settings: Settings, message_id: str,
                        action: str, detail: dict[str, Any], original: bytes | None, *,
                        now: datetime) -> bool:
    """Queue the notice when ``action`` started a review (an admin held active mail) or
    ended one; True if one was queued."""
    review = _OUTCOMES.get(action)
    if review is None:
        return False
    if review is not Review.HELD and detail.get("from_state") not in {
            s.value for s in REVIEW_STATES}:
        return False
    view = store.get_message(message_id)
    wanted = ((RecipientState.CANCELLED,) if review is Review.REJECTED
              else PENDING_RECIPIENT_STATES)
    return queue_review_notice(store, settings, ReviewedMessage(
        queue_id=view.id, sender=view.sender,
        recipients=[r.address for r in view.recipients if r.state in wanted],
        message_class=view.message_class, phi=view.phi_verdict == "phi",
        arrival=view.created_at, original=original), review, now=now)
