"""The TUI's dashboard shows current AUTH lockouts, read from the database that serve writes
them to; the lockouts screen (7) unlocks the selected one with ``u``, after a confirmation,
through the admin service's unlock (operator-only and audited, as ``phigate user unlock``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from phigate.admin import AdminService
from phigate.admin.roles import AccessDenied
from phigate.admin_tui.app import AdminApp
from phigate.admin_tui.screens.lockouts import LockoutsScreen
from phigate.admin_tui.widgets.dialogs import ConfirmDialog
from phigate.mta.submission.auth import lockout_tracker
from phigate.runtime import Runtime


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'queue.db'}"


def lock_out(runtime: Runtime, user: str, ip: str) -> None:
    serving = lockout_tracker(runtime.settings, runtime.engine)  # as serve counts them
    for _ in range(runtime.settings.submission.auth_max_failures):
        serving.failure(ip, user)


async def test_the_dashboard_shows_lockouts_at_80x24(operator: AdminService,
                                                     runtime: Runtime) -> None:
    app = AdminApp(operator)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "lockouts" not in str(app.screen.query_one("#dash-queue", Static).render())
    lock_out(runtime, "ehr", "203.0.113.9")
    lock_out(runtime, "billing", "198.51.100.4")
    app = AdminApp(operator)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        panel = str(app.screen.query_one("#dash-queue", Static).render())
        line = next(text for text in panel.splitlines() if text.startswith("lockouts"))
        assert line == "lockouts       billing@198.51.100.4 +1"


def test_unlock_is_for_operators_and_audited(operator: AdminService, viewer: AdminService,
                                             runtime: Runtime) -> None:
    lock_out(runtime, "ehr", "203.0.113.9")
    assert [(lock.user, lock.client_ip) for lock in viewer.lockouts()[0]] == [
        ("ehr", "203.0.113.9")]
    with pytest.raises(AccessDenied):
        viewer.unlock_user("ehr")
    assert operator.unlock_user("ehr") == 1
    assert operator.lockouts() == ([], [])
    entry = runtime.audit.entries()[0]
    assert entry["action"] == "user.unlock"


def table_rows(app: AdminApp) -> list[tuple[str, ...]]:
    table = app.screen.query_one("#lockout-table", DataTable)
    return [tuple(str(cell) for cell in table.get_row_at(index)[:3])
            for index in range(table.row_count)]


def locked_out(runtime: Runtime, user: str, ip: str) -> bool:
    return lockout_tracker(runtime.settings, runtime.engine).admit(ip, user).locked_for > 0


async def test_u_unlocks_the_selected_lockout_and_the_audit_log_says_who(
        operator: AdminService, runtime: Runtime) -> None:
    lock_out(runtime, "ehr", "203.0.113.9")
    lock_out(runtime, "billing", "198.51.100.4")
    app = AdminApp(operator)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("7")
        await pilot.pause()
        assert isinstance(app.screen, LockoutsScreen)
        assert table_rows(app) == [("billing", "198.51.100.4", "locked out"),
                                   ("ehr", "203.0.113.9", "locked out")]
        await pilot.press("down", "u")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")  # no: nothing changes
        await pilot.pause()
        assert len(table_rows(app)) == 2 and runtime.audit.entries() == []
        await pilot.press("u")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert table_rows(app) == [("billing", "198.51.100.4", "locked out")]
    assert not locked_out(runtime, "ehr", "203.0.113.9")
    assert locked_out(runtime, "billing", "198.51.100.4")  # only the selected row
    [entry] = runtime.audit.entries(action="user.unlock")
    assert (entry["actor"], entry["actor_ip"], entry["detail"]) == (
        "otto", "203.0.113.7",
        {"user": "ehr", "client_ip": "203.0.113.9", "lockouts_cleared": 1})


async def test_unlocking_a_tarpitted_name_clears_it_from_every_address(
        operator: AdminService, runtime: Runtime) -> None:
    serving = lockout_tracker(runtime.settings, runtime.engine)
    guesses = runtime.settings.submission.auth_tarpit_failures
    for guess in range(guesses):  # spread out: no address reaches auth_max_failures
        serving.failure(f"198.51.100.{guess}", "ehr")
    lock_out(runtime, "ehr", "203.0.113.9")
    assert serving.admit("192.0.2.1", "ehr").delay > 0
    app = AdminApp(operator)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("7")
        await pilot.pause()
        assert table_rows(app) == [("ehr", "203.0.113.9", "locked out"),
                                   ("ehr", "(every address)", "slowed")]
        await pilot.press("down", "u", "y")
        await pilot.pause()
        assert table_rows(app) == []
        assert "no lockouts" in str(app.screen.query_one("#lockout-status", Static).render())
    assert serving.admit("192.0.2.1", "ehr").delay == 0
    assert not locked_out(runtime, "ehr", "203.0.113.9")
    [entry] = runtime.audit.entries(action="user.unlock")
    assert entry["detail"] == {"user": "ehr", "client_ip": "*", "lockouts_cleared": 1}


async def test_a_viewer_sees_the_lockouts_but_u_is_refused_and_audited(
        viewer: AdminService, runtime: Runtime) -> None:
    lock_out(runtime, "ehr", "203.0.113.9")
    app = AdminApp(viewer)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.press("7", "u")
        await pilot.pause()
        assert isinstance(app.screen, LockoutsScreen)  # no dialog for a viewer
        assert "vera may not run user.unlock" in list(app._notifications)[0].message
        assert len(table_rows(app)) == 1
    assert locked_out(runtime, "ehr", "203.0.113.9")
    denied = runtime.audit.entries(action="action.denied")
    assert [entry["detail"] for entry in denied] == [{"action": "user.unlock",
                                                      "role": "viewer"}]
