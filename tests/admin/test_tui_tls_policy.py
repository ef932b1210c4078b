"""The TUI message screen shows the TLS policy each attempt ran under (issue 17)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from textual.widgets import Static

from phigate.admin import AdminService
from phigate.admin_tui.app import AdminApp
from phigate.admin_tui.screens.message import MessageScreen
from phigate.queue.models import Attempt, Recipient
from phigate.runtime import Runtime


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'queue.db'}"


async def test_message_screen_shows_each_attempts_tls_policy(
        operator: AdminService, enqueue: Callable[..., str], runtime: Runtime) -> None:
    message_id = enqueue("a@x.example")
    with runtime.store.writing() as session:
        recipient = session.scalars(select(Recipient).where(
            Recipient.message_id == message_id)).one()
        session.add(Attempt(recipient_id=recipient.id, message_id=message_id,
                            started_at=datetime.now(UTC), duration_seconds=0.1,
                            host="mx1.x.example[192.0.2.1]:25", code=454,
                            text="4.7.5 DANE: the certificate of mx1.x.example matches none of "
                                 "its TLSA records", permanent=False, tls_version="TLSv1.3",
                            tls_cipher="TLS_AES_256_GCM_SHA384", cert_verified=False,
                            tls_policy="dane"))
    app = AdminApp(operator)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("2", "enter")
        await pilot.pause()
        assert isinstance(app.screen, MessageScreen)
        text = str(app.screen.query_one("#attempts", Static).render())
    assert "policy dane, TLSv1.3 unverified" in text
