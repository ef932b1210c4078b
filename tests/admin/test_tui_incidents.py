"""The TUI dashboard names open bounce incidents (reason and count, never a domain list)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from textual.widgets import Static

from phigate.admin import AdminService, Dashboard
from phigate.admin_tui.app import AdminApp
from phigate.admin_tui.screens import dashboard as dashboard_screen
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


async def test_a_store_slower_than_the_refresh_still_gets_its_figures_shown(
        operator: AdminService, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each tick used to cancel the load still running (CI, PostgreSQL under load): with a
    store slower than the refresh interval the dashboard never showed anything."""
    monkeypatch.setattr(dashboard_screen, "REFRESH_SECONDS", 0.1)
    real = operator.dashboard
    calls = []

    def slow() -> Dashboard:
        calls.append(time.monotonic())
        time.sleep(0.5)  # five ticks
        return real()

    monkeypatch.setattr(operator, "dashboard", slow)
    app = AdminApp(operator)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.8)
        await app.workers.wait_for_complete()  # nothing cancelled
        await pilot.pause()
        assert "queued 0" in str(app.screen.query_one("#dash-queue", Static).render())
    assert 1 <= len(calls) <= 3  # one load at a time, not one per tick
