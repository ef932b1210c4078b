"""Notices to the sending application about mail held for review (issue 13 item 5).

A message that policy quarantines, that waits for its campaign's approval, or that an admin
holds was answered ``250 Queued`` like any other: the EHR would believe the patient was
mailed. For the classes listed in ``[policy] review_notice_classes`` (none by default),
phigate tells the envelope sender:

- when the message is held (at submission, or an admin holds active mail): an RFC 3464
  report with ``Action: delayed`` and ``Status: 4.7.0`` ("held for review");
- when an admin releases it: ``Action: delayed``, ``Status: 4.0.0`` (released, delivery
  under way; a failure later brings the usual DSN);
- when an admin rejects or deletes it: ``Action: failed``, ``Status: 5.7.1``.

A campaign's messages wait as a group: approving (or resuming) a campaign releases every
message that waited for it, and pausing one (by an admin, or for its complaint rate) holds
its queued messages; each of their senders hears "released" or "held"
(:func:`notify_campaign_review`).

Each carries ``X-Phigate-Review: held|released|rejected`` and ``X-Phigate-Queue-Id`` in its
per-message block, so an application can match it to ``GET /v1/messages/<queue-id>``.

No PHI: a notice is always built in the minimal form of DSNs about PHI mail (the queue id,
the original Message-ID as the only returned header, the recipients we were given,
action and status). It never says *why* the message waits (a rule's reason could name a
PHI category), never quotes the content, the Subject or a display name. It is queued with
the original's PHI verdict, so it leaves over the TLS the original would have needed.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from phigate.clock import utcnow
from phigate.config import Settings
from phigate.mta.delivery.dsn import FailedRecipient, build_dsn
from phigate.mta.delivery.reports import queue_report
from phigate.observability.logs import log_event
from phigate.queue.models import PENDING_RECIPIENT_STATES, MessageClass, MessageState
from phigate.queue.store import NewMessage, SqlQueueStore

log = logging.getLogger("phigate.review_notices")


class Review(enum.StrEnum):
    HELD = "held"  # quarantined, held or awaiting approval: not sent (yet)
    RELEASED = "released"  # an admin released it: delivery goes ahead
    REJECTED = "rejected"  # an admin rejected or deleted it: it will never be sent


@dataclass(frozen=True)
class _Wording:
    action: str
    status: str
    diagnostic: str
    subject: str
    text: str


_WORDING = {
    Review.HELD: _Wording(
        "delayed", "4.7.0", "X-Phigate; held for review", "Message held for review",
        "Your message has not been sent yet: it is held for review by the practice's\n"
        "staff. You do not need to send it again. You will get another notice when it\n"
        "is released or rejected."),
    Review.RELEASED: _Wording(
        "delayed", "4.0.0", "X-Phigate; released after review", "Message released",
        "Your message was reviewed and released: delivery to the recipient(s) is\n"
        "under way. Should it fail, you will get a delivery report as usual."),
    Review.REJECTED: _Wording(
        "failed", "5.7.1", "X-Phigate; rejected after review", "Message rejected",
        "Your message was reviewed and will not be sent to the recipient(s). Please\n"
        "contact the practice's mail administrator if you need to know more."),
}


@dataclass(frozen=True)
class ReviewedMessage:
    """What a notice may name of the message it is about (never its content)."""

    queue_id: str
    sender: str
    recipients: Sequence[str]
    message_class: MessageClass
    phi: bool
    arrival: datetime
    #: The original message, read only for its Message-ID (None: purged or unreadable).
    original: bytes | None = None


def wants_notice(settings: Settings, message: ReviewedMessage) -> bool:
    return bool(message.sender and message.recipients
                and message.message_class in settings.policy.review_notice_classes)


def build_review_notice(message: ReviewedMessage, review: Review, *, reporting_mta: str,
                        from_domain: str, now: datetime) -> bytes | None:
    """The notice as bytes; None for a null sender or a message that is itself a report."""
    wording = _WORDING[review]
    text = (f"This is the mail system at {reporting_mta}.\n\n{wording.text}\n\n"
            f"Queue id: {message.queue_id}\n")
    return build_dsn(
        original=message.original or b"\r\n", envelope_sender=message.sender,
        failed=[FailedRecipient(address, wording.status, None, wording.diagnostic,
                                action=wording.action, last_attempt=now)
                for address in message.recipients],
        reporting_mta=reporting_mta, arrival=message.arrival, queue_id=message.queue_id,
        phi=True, from_domain=from_domain, explanation=text, subject=wording.subject,
        extra_fields=[("X-Phigate-Review", review.value)])


def queue_review_notice(store: SqlQueueStore, settings: Settings, message: ReviewedMessage,
                        review: Review, *, now: datetime) -> bool:
    """Queue the notice if the message's class asks for one; True if queued.

    Never raises: the message itself is already committed (and answered), so a notice that
    cannot be queued is logged and given up on rather than failing what it is about.
    """
    if not wants_notice(settings, message):
        return False
    try:
        notice = build_review_notice(message, review, reporting_mta=settings.server.hostname,
                                     from_domain=settings.server.domain, now=now)
        if notice is None:
            return False
        queue_report(store, recipients=[message.sender], body=notice, phi=message.phi,
                     now=now)
    except Exception as error:
        log_event(log, "review_notice_failed", level=logging.WARNING, id=message.queue_id,
                  review=review.value, error=type(error).__name__)
        return False
    log_event(log, "review_notice_queued", id=message.queue_id, review=review.value)
    return True


def enqueue_and_notify(store: SqlQueueStore, settings: Settings, message: NewMessage) -> str:
    """Submission's enqueue: the message committed, then, if it waits for review (held,
    quarantined, awaiting approval) and its class asks for it, the "held" notice."""
    message_id = store.enqueue(message)
    if message.state is not MessageState.ACTIVE:
        queue_review_notice(store, settings, ReviewedMessage(
            queue_id=message_id, sender=message.sender, recipients=list(message.recipients),
            message_class=message.message_class, phi=message.phi_verdict == "phi",
            arrival=utcnow(), original=message.body), Review.HELD, now=utcnow())
    return message_id


def notify_campaign_review(store: SqlQueueStore, settings: Settings,
                           message_ids: Sequence[str], review: Review, *, now: datetime
                           ) -> int:
    """Tell the senders of a campaign's messages that were released (``RELEASED``) or held
    (``HELD``) together; returns how many notices were queued.

    Called after the campaign change committed. Costs nothing when no class asks for
    notices; otherwise each message's body is read once, for its Message-ID.
    """
    if not settings.policy.review_notice_classes:
        return 0
    queued = 0
    for message_id in message_ids:
        view = store.get_message(message_id)
        if view.message_class not in settings.policy.review_notice_classes:
            continue
        try:
            original: bytes | None = store.read_body(message_id)
        except Exception:  # purged meanwhile: the notice then names no Message-ID
            original = None
        queued += queue_review_notice(store, settings, ReviewedMessage(
            queue_id=view.id, sender=view.sender,
            recipients=[r.address for r in view.recipients
                        if r.state in PENDING_RECIPIENT_STATES],
            message_class=view.message_class, phi=view.phi_verdict == "phi",
            arrival=view.created_at, original=original), review, now=now)
    return queued
