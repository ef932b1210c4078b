"""The tokens of claimed recipients, recorded in the claim's own transaction.

With a token key every recipient's message goes out with a VERP return path (and marketing
with unsubscribe links) whose token must be in the registry before the message leaves, so
that a bounce or an unsubscribe finds it. :func:`~phigate.mta.delivery.decorate.decorate`
records what it makes, but that was a transaction (a commit, an fsync) of its own per
message, on the prepare thread, before the send: on the relay's SQLite queue ~0.6 ms of CPU
per message (issue 16). The claim is a writing transaction anyway, and the claimed rows say
which tokens decorate will make (:func:`~phigate.mta.delivery.decorate.token_claims`), so
they are written there; the signer notes them recorded once the claim has committed, and
decorate then writes nothing. A token recorded for a recipient whose delivery then does not
happen costs a row that expires; nothing depends on a token being used.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from phigate.mta.delivery.decorate import token_claims
from phigate.policy.token_registry import SqlTokenRegistry
from phigate.policy.tokens import TokenRecord, TokenSigner
from phigate.queue.store import ClaimedRecipient, QueueStore


class ClaimTokens:
    """``claim_due`` that also records the claimed recipients' tokens (module doc)."""

    def __init__(self, signer: TokenSigner, registry: SqlTokenRegistry) -> None:
        self._signer = signer
        self._registry = registry

    @classmethod
    def maybe(cls, signer: TokenSigner | None, store: QueueStore) -> ClaimTokens | None:
        """Only where the registry is in the queue's own database (one transaction)."""
        registry = signer.registry if signer is not None else None
        if (signer is None or not isinstance(registry, SqlTokenRegistry)
                or registry.engine is not getattr(store, "engine", None)):
            return None
        return cls(signer, registry)

    def claim_due(self, store: QueueStore, owner: str, *, now: datetime, limit: int,
                  lease_seconds: int) -> list[ClaimedRecipient]:
        written: list[TokenRecord] = []

        def record(session: Session, claimed: list[ClaimedRecipient]) -> None:
            records = self._signer.unrecorded(
                claims for recipient in claimed for claims in token_claims(
                    recipient=recipient.address, sender=recipient.sender,
                    message_class=recipient.message_class,
                    campaign_id=recipient.campaign_id))
            self._registry.record_in(session, records)
            written[:] = records

        claimed = store.claim_due(owner, now=now, limit=limit,
                                  lease_seconds=lease_seconds, also=record)
        self._signer.note_recorded(written)  # committed: decorate writes none of them
        return claimed
