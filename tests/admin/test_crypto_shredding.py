"""Issue 13 finding 7: after `purge` or `queue delete`, a destroyed message's wrapped key
stayed in phigate.db and phigate.db-wal until a WAL checkpoint. Now both read clean right
after the command: secure_delete zeroes the freed cells, a TRUNCATE checkpoint empties
the WAL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from phigate.admin import AdminService
from phigate.queue.models import Message, MessageBody, MessageState
from phigate.runtime import Runtime

Enqueue = Callable[..., str]


def database_files(runtime: Runtime) -> list[Path]:
    url = runtime.settings.storage.url
    if not url.startswith("sqlite"):
        pytest.skip("SQLite files only (PostgreSQL: VACUUM, see docs/operations.md)")
    database = Path(url.removeprefix("sqlite:///"))
    return [database, Path(f"{database}-wal")]


def secrets_of(runtime: Runtime, message_id: str) -> list[bytes]:
    """The wrapped key and a stretch of the ciphertext, as they lie on disk."""
    with runtime.store.engine.connect() as connection:
        wrapped = connection.scalar(select(Message.wrapped_key).where(Message.id == message_id))
        sealed = connection.scalar(select(MessageBody.ciphertext)
                                   .where(MessageBody.message_id == message_id))
    assert wrapped and sealed
    return [wrapped, sealed[16:48]]


def on_disk(files: list[Path], needle: bytes) -> list[str]:
    return [path.name for path in files if path.exists() and needle in path.read_bytes()]


def test_queue_delete_leaves_no_wrapped_key_in_the_db_or_wal(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    files = database_files(runtime)
    message_id = enqueue("pat@example.org")
    key, ciphertext = secrets_of(runtime, message_id)
    assert on_disk(files, key)  # the control: it is there before

    [outcome] = operator.delete([message_id])

    assert outcome.ok
    assert on_disk(files, key) == [] and on_disk(files, ciphertext) == []


def test_purge_leaves_no_wrapped_key_in_the_db_or_wal(
        operator: AdminService, enqueue: Enqueue, runtime: Runtime) -> None:
    files = database_files(runtime)
    message_id = enqueue("pat@example.org", age=timedelta(days=400))
    key, ciphertext = secrets_of(runtime, message_id)
    with runtime.store.engine.begin() as connection:
        connection.execute(update(Message).where(Message.id == message_id).values(
            state=MessageState.DONE, final_at=Message.created_at))
    assert on_disk(files, key)

    report = operator.purge()

    assert report.bodies_destroyed == 1
    assert on_disk(files, key) == [] and on_disk(files, ciphertext) == []
