"""The TUI's dashboard shows current AUTH lockouts, read from the database that serve writes
them to; the admin service's unlock is operator-only and audited."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from phigate.admin import AdminService
from phigate.admin.roles import AccessDenied
from phigate.admin_tui.app import AdminApp
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
