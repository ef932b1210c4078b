"""The tokens of claimed recipients are recorded in the claim's transaction (issue 16), so
decorate() writes nothing of its own, and nothing is noted recorded that did not commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phigate.config import settings_from_mapping
from phigate.mta.delivery.claim_tokens import ClaimTokens
from phigate.mta.delivery.decorate import decorate
from phigate.policy.token_registry import SqlTokenRegistry
from phigate.policy.tokens import (
    MemoryTokenRegistry,
    TokenRecord,
    TokenSigner,
    token_in_address,
)
from phigate.queue.models import MessageClass
from phigate.queue.policy_models import IssuedToken
from phigate.queue.store import ClaimedRecipient, NewMessage, SqlQueueStore

SETTINGS = settings_from_mapping({
    "server": {"domain": "practice.test"},
    "http": {"public_url": "https://relay.practice.test"},
})
BODY = b"From: news@practice.test\r\nTo: x@example.org\r\nSubject: hi\r\n\r\nHello\r\n"


def _enqueue(store: SqlQueueStore) -> None:
    store.enqueue(NewMessage(sender="clinic@practice.test", recipients=["pat@example.org"],
                             body=BODY))
    store.enqueue(NewMessage(sender="news@practice.test", recipients=["fan@example.org"],
                             body=BODY, message_class=MessageClass.MARKETING,
                             campaign_id="spring"))
    store.enqueue(NewMessage(sender="", recipients=["dsn@example.org"], body=BODY))


def _rows(store: SqlQueueStore) -> dict[str, int]:
    with store.engine.connect() as connection:
        query = select(IssuedToken.kind, func.count()).group_by(IssuedToken.kind)
        return {kind: count for kind, count in connection.execute(query)}


def _claim(tokens: ClaimTokens, store: SqlQueueStore) -> list[ClaimedRecipient]:
    from phigate.clock import utcnow

    return tokens.claim_due(store, "me", now=utcnow() + timedelta(seconds=1), limit=10,
                            lease_seconds=60)


def test_claimed_recipients_tokens_are_written_with_the_claim(store: SqlQueueStore) -> None:
    registry = SqlTokenRegistry(store.engine)
    signer = TokenSigner(b"k" * 32, registry)
    tokens = ClaimTokens.maybe(signer, store)
    assert tokens is not None
    _enqueue(store)

    claimed = _claim(tokens, store)

    assert len(claimed) == 3
    # VERP for both senders, unsubscribe for the marketing one; none for the null sender.
    assert _rows(store) == {"verp": 2, "unsubscribe": 1}
    for recipient in claimed:
        decorated = decorate(BODY, recipient=recipient.address, sender=recipient.sender,
                             message_class=recipient.message_class,
                             campaign_id=recipient.campaign_id, settings=SETTINGS,
                             signer=signer)
        if recipient.sender:
            _, token = token_in_address(decorated.mail_from) or ("", "")
            found = signer.parse(token, kind="verp")
            assert found is not None and found.recipient == recipient.address
    assert registry._records.commits == 0  # decorate made them all, and wrote nothing


def test_nothing_is_noted_recorded_when_the_claim_does_not_commit(
        store: SqlQueueStore, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = SqlTokenRegistry(store.engine)
    signer = TokenSigner(b"k" * 32, registry)
    tokens = ClaimTokens.maybe(signer, store)
    assert tokens is not None
    _enqueue(store)
    written = registry.record_in

    def write_then_fail(session: Session, records: Sequence[TokenRecord]) -> None:
        written(session, records)
        raise RuntimeError("disk full")

    monkeypatch.setattr(registry, "record_in", write_then_fail)
    with pytest.raises(RuntimeError):
        _claim(tokens, store)
    assert _rows(store) == {}  # rolled back with the claim

    monkeypatch.undo()
    claimed = _claim(tokens, store)  # the leases were rolled back too: claimed again
    assert len(claimed) == 3 and _rows(store) == {"verp": 2, "unsubscribe": 1}


def test_decorate_still_records_what_the_claim_did_not(store: SqlQueueStore) -> None:
    # Without ClaimTokens (or for a token the claim did not write) decorate writes it.
    registry = SqlTokenRegistry(store.engine)
    signer = TokenSigner(b"k" * 32, registry)
    decorate(BODY, recipient="pat@example.org", sender="clinic@practice.test",
             message_class=MessageClass.TREATMENT, campaign_id=None, settings=SETTINGS,
             signer=signer)
    assert registry._records.commits == 1 and _rows(store) == {"verp": 1}


def test_only_a_registry_in_the_queues_database_is_written_with_the_claim(
        store: SqlQueueStore) -> None:
    assert ClaimTokens.maybe(None, store) is None
    assert ClaimTokens.maybe(TokenSigner(b"k" * 32, MemoryTokenRegistry()), store) is None
    other = SqlTokenRegistry(store.engine.execution_options())  # another Engine object
    assert ClaimTokens.maybe(TokenSigner(b"k" * 32, other), store) is None
