"""Queueing a report of ours (a DSN, a delay or review notice, a TLS report): one place.

Every report leaves as a new message with the null envelope sender (RFC 5321 4.5.5: a
report is never answered by another report), in the ``operations`` class. A report about
a message that carries PHI inherits its PHI verdict, and with it the TLS the original
needed ([delivery] tls_phi, verified by default): a DSN or notice names the recipients of
PHI mail and its Message-ID, so it must not travel in clear where the original could not.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from phigate.queue.models import MessageClass
from phigate.queue.store import NewMessage, QueueStore


def queue_report(store: QueueStore, *, recipients: Sequence[str], body: bytes, phi: bool,
                 now: datetime | None = None) -> str:
    """Enqueue ``body`` from the null sender to ``recipients``; returns its queue id.

    ``phi``: the report is about PHI mail and needs the TLS PHI needs. ``now`` keeps the
    report on the caller's clock (due at once, also under a test clock).
    """
    return store.enqueue(NewMessage(sender="", recipients=list(recipients), body=body,
                                    message_class=MessageClass.OPERATIONS,
                                    phi_verdict="phi" if phi else "none"), now=now)
