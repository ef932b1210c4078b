"""A restarted node gives back the leases of its previous run (issue 14 item 6): every
lease on SQLite (one node), only those of its own ``[server] node_name`` on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.storage import migrated_store
from sqlalchemy import select

from phigate.config import Settings, validate
from phigate.config.sections import ServerSettings
from phigate.errors import ConfigError
from phigate.queue.models import Recipient
from phigate.queue.store import NewMessage, SqlQueueStore

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def store(db_url: str, master_key_file: Path) -> Iterator[SqlQueueStore]:
    with migrated_store(db_url, master_key_file) as store:
        yield store


def owners(store: SqlQueueStore) -> list[str | None]:
    with store.reading() as session:
        return sorted(session.scalars(select(Recipient.lease_owner)),
                      key=lambda owner: owner or "")


def test_a_node_takes_back_its_own_leases(store: SqlQueueStore) -> None:
    for _ in range(3):
        store.enqueue(NewMessage(sender="a@practice.test", recipients=["p@example.org"],
                                 body=b"Subject: x\r\n\r\ny\r\n"), now=NOW)
    # Killed runs of node_a and of a node whose name differs only where LIKE's '_'
    # wildcard would match it; and another node still running.
    for owner in ("node_a:101:aa", "nodeXa:7:bb", "node-b:5:cc"):
        assert len(store.claim_due(owner, now=NOW, limit=1, lease_seconds=300)) == 1
    released = store.release_node_leases("node_a")
    if store.engine.dialect.name == "sqlite":
        assert (released, owners(store)) == (3, [None, None, None])
    else:
        assert (released, owners(store)) == (1, [None, "node-b:5:cc", "nodeXa:7:bb"])


def test_the_node_name_defaults_to_the_host_name_and_is_checked() -> None:
    import socket

    assert ServerSettings().node() == socket.gethostname()
    assert ServerSettings(node_name="relay-1").node() == "relay-1"
    for bad in ("a:b", "with space", "-lead", "x" * 65):
        settings = Settings(server=ServerSettings(node_name=bad))
        with pytest.raises(ConfigError, match=r"^\[server\] node_name: "):
            validate(settings, check_files=False)
