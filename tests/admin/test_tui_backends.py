"""The TUI against SQLite and PostgreSQL: an action and a quarantine release end to end
(the other Pilot tests run on SQLite only; the service tests cover both backends)."""

from __future__ import annotations

from collections.abc import Callable

from phigate.admin import AdminService
from phigate.admin_tui.app import AdminApp
from phigate.queue.models import MessageState
from phigate.runtime import Runtime


async def test_hold_then_release_a_quarantined_message(
        operator: AdminService, enqueue: Callable[..., str], runtime: Runtime) -> None:
    active = enqueue("a@x.example")
    quarantined = enqueue("b@x.example", state=MessageState.QUARANTINED, phi_verdict="phi")
    app = AdminApp(operator)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2", "h", "enter")  # hold the first row: no reason given
        await pilot.press("3", "l", *"checked", "enter")
        await pilot.pause()
    assert runtime.store.get_message(active).state == MessageState.HELD
    assert runtime.store.get_message(quarantined).state == MessageState.ACTIVE
    assert [e["action"] for e in runtime.audit.entries()] == ["queue.release", "queue.hold"]
