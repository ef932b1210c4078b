"""One suppression lookup per recipient and SMTP transaction (issue 16 item 4): RCPT's
answer is kept with the envelope and DATA reuses it, reading it for the header's class."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from phigate.audit.log import Actor
from policy.support import PolicyRelay, mail, submit


@pytest.fixture
def suppression_queries(policy_relay: PolicyRelay) -> Iterator[list[str]]:
    """The policy's suppression lookups (``scopes_for``), as they run."""
    engine = policy_relay.runtime.engine
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM suppressions" in statement and "suppressions.address IN" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    yield seen
    event.remove(engine, "before_cursor_execute", before)


async def test_data_reuses_the_lookups_made_at_rcpt(
    policy_relay: PolicyRelay, client_tls: ssl.SSLContext, suppression_queries: list[str]
) -> None:
    result = await submit(policy_relay, client_tls, mail(message_class="treatment"),
                          ["pat@example.org", "kim@example.org"])
    assert result.data is not None and result.data[0] == 250
    assert len(suppression_queries) == 2  # one per RCPT, none at DATA


async def test_a_marketing_suppression_seen_at_rcpt_still_refuses_marketing_at_data(
    policy_relay: PolicyRelay, client_tls: ssl.SSLContext, suppression_queries: list[str]
) -> None:
    # "clinic" sends treatment by default: RCPT accepts; the header makes it marketing.
    policy_relay.grant("pat@example.org")
    policy_relay.stores.suppressions.add("pat@example.org", "marketing", kind="unsubscribe",
                                         reason="test", source="one-click",
                                         actor=Actor("phigate"))
    result = await submit(policy_relay, client_tls,
                          mail(message_class="marketing", campaign="spring"),
                          ["pat@example.org"])
    assert result.rcpt["pat@example.org"][0] == 250
    assert result.data == (550, "5.7.1 Message refused: recipient <pat@example.org>: "
                                "Recipient has unsubscribed from marketing mail")
    assert len(suppression_queries) == 1


async def test_each_transaction_looks_again(
    policy_relay: PolicyRelay, client_tls: ssl.SSLContext, suppression_queries: list[str]
) -> None:
    first = await submit(policy_relay, client_tls, mail(message_class="treatment"),
                         ["gone@example.org"])
    assert first.data is not None and first.data[0] == 250
    policy_relay.stores.suppressions.add("gone@example.org", "all", kind="hard_bounce",
                                         reason="5.1.1", source="feedback",
                                         actor=Actor("phigate"))
    second = await submit(policy_relay, client_tls, mail(message_class="treatment"),
                          ["gone@example.org"])
    assert second.rcpt["gone@example.org"][0] == 550
