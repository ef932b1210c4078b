"""What a claim becomes: a :class:`Job`, one message for the claimed recipients of one
destination domain (one SMTP transaction), or of one recipient when VERP gives each
recipient its own return path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from phigate.queue.store import ClaimedRecipient


@dataclass
class Job:
    """One message for the claimed recipients of one domain."""

    message_id: str
    domain: str
    recipients: list[ClaimedRecipient]
    lease_until: datetime

    @property
    def first(self) -> ClaimedRecipient:
        return self.recipients[0]


def group_jobs(claimed: Sequence[ClaimedRecipient], lease_until: datetime, *,
               per_recipient: bool = False) -> list[Job]:
    """One job per message and domain (one transaction), or per recipient under VERP."""
    jobs: dict[tuple[str, str], Job] = {}
    for recipient in claimed:
        key = (recipient.message_id, recipient.address if per_recipient else recipient.domain)
        if key not in jobs:
            jobs[key] = Job(recipient.message_id, recipient.domain, [], lease_until)
        jobs[key].recipients.append(recipient)
    return list(jobs.values())
