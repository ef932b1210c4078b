"""The TUI dashboard names open bounce incidents (reason and count, never a domain list)."""

from __future__ import annotations

from datetime import UTC, datetime

from textual.widgets import Static

from phigate.admin import AdminService
from phigate.admin_tui.app import AdminApp
from phigate.policy.incidents import IncidentStore

SIZE = (100, 30)


async def test_dashboard_shows_open_incidents(operator: AdminService) -> None:
    incidents = IncidentStore(operator.store.engine, operator.audit)
    now = datetime.now(UTC)
    incidents.record_now("clinic-patients.example", "blocked", now=now)
    incidents.record_now("other.example", "authfailure", now=now)
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        queue = str(app.screen.query_one("#dash-queue", Static).render())
        assert "incidents      2 (authfailure 1, blocked 1)" in queue
        assert "clinic-patients.example" not in queue


async def test_dashboard_without_incidents_has_no_incident_line(operator: AdminService
                                                                ) -> None:
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "incidents" not in str(app.screen.query_one("#dash-queue", Static).render())
