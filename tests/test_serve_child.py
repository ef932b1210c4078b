"""serve's supervision of its delivery child (phigate.serve_child), on small real processes:
a child that keeps dying is restarted with a back-off while /healthz says delivery is down,
a stopping child gets SIGTERM, one that overstays is killed, and systemd's variables never
reach it. The real ``serve --role delivery`` child is in test_delivery_process.py."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest
from helpers.processes import alive
from helpers.wait import wait_until
from prometheus_client import CollectorRegistry

from phigate.observability.health import HealthState
from phigate.observability.logs import FIELDS_ATTR
from phigate.observability.metrics import Metrics
from phigate.serve_child import Backoff, DeliveryChild

CHILD = textwrap.dedent("""
    import json, os, signal, sys, time
    mode, directory = sys.argv[1], sys.argv[2]
    with open(os.path.join(directory, f"env-{os.getpid()}.json"), "w") as out:
        json.dump({"environ": sorted(os.environ), "argv": sys.argv[3:]}, out)
    if mode == "crash":
        sys.exit(3)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    open(os.path.join(directory, "ready"), "w").close()
    time.sleep(120)
""")
QUICK = Backoff(first_seconds=0.2, max_seconds=0.4, reset_after_seconds=60)


def child(tmp_path: Path, mode: str, metrics: Metrics) -> DeliveryChild:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return DeliveryChild([sys.executable, str(script), mode, str(tmp_path)], backoff=QUICK,
                         metrics=metrics)


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, object]]:
    return [getattr(r, FIELDS_ATTR) for r in caplog.records if r.getMessage() == name]


async def test_a_dying_child_is_restarted_with_a_back_off_and_reported_down(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    metrics = Metrics(CollectorRegistry())
    health = HealthState(database_check=lambda: None, listeners=[], metrics=metrics)
    supervised = child(tmp_path, "crash", metrics)
    with caplog.at_level(logging.INFO, logger="phigate"):
        await supervised.start(health)
        try:
            await wait_until(lambda: supervised.restarts >= 3, timeout=30,
                             what="three restarts")
            # Down most of the time (0.2-0.4 s of back-off per run of a few ms).
            for _ in range(600):  # wait_until's condition cannot be typed async here
                if await _down(health):
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("/healthz never said delivery is down (503)")
        finally:
            await supervised.stop(5)
    exits = events(caplog, "delivery_process_exited")
    assert len(exits) >= 3 and all(e["status"] == 3 for e in exits)
    assert [e["restart_in"] for e in exits[:3]] == [0.2, 0.4, 0.4]  # doubling, capped
    assert metrics.registry.get_sample_value("phigate_delivery_process_restarts_total") == \
        supervised.restarts
    started = {e["pid"] for e in events(caplog, "delivery_process_started")}
    assert len(started) == supervised.restarts + 1
    for record in tmp_path.glob("env-*.json"):
        seen = json.loads(record.read_text())
        assert "NOTIFY_SOCKET" not in seen["environ"]
        assert "WATCHDOG_USEC" not in seen["environ"]
        assert "PATH" in seen["environ"]
        assert seen["argv"][:2] == ["--supervised-by", str(os.getpid())]


async def _down(health: HealthState) -> bool:
    report = await health.check()
    return report.checks.get("delivery") is False and report.http_status == 503


async def test_stop_sends_sigterm_and_the_child_ends(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics(CollectorRegistry())
    health = HealthState(database_check=lambda: None, listeners=[], metrics=metrics)
    supervised = child(tmp_path, "serve", metrics)
    with caplog.at_level(logging.INFO, logger="phigate"):
        await supervised.start(health)
        await wait_until(lambda: (tmp_path / "ready").exists(), timeout=30, what="child up")
        pid = supervised.pid
        assert pid is not None and alive(pid)
        assert (await health.check()).checks["delivery"] is True
        await supervised.stop(20)
    assert not supervised.running() and not alive(pid)
    [stopped] = events(caplog, "delivery_process_stopped")
    assert stopped == {"pid": pid, "status": -signal.SIGTERM}
    assert events(caplog, "delivery_process_exited") == []
    assert events(caplog, "delivery_process_killed") == []
    assert supervised.restarts == 0


async def test_a_child_that_overstays_its_stop_is_killed_with_a_log_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics(CollectorRegistry())
    supervised = child(tmp_path, "stubborn", metrics)
    with caplog.at_level(logging.INFO, logger="phigate"):
        await supervised.start()
        await wait_until(lambda: (tmp_path / "ready").exists(), timeout=30, what="child up")
        pid = supervised.pid
        assert pid is not None
        await supervised.stop(0.5)
    assert not alive(pid)
    [killed] = events(caplog, "delivery_process_killed")
    assert killed["pid"] == pid
    [stopped] = events(caplog, "delivery_process_stopped")
    assert stopped["status"] == -signal.SIGKILL


async def test_a_failed_restart_of_any_kind_is_logged_and_retried(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = Metrics(CollectorRegistry())
    supervised = child(tmp_path, "crash", metrics)
    spawn = supervised._spawn
    failures = iter([ValueError("embedded null byte"), OSError(24, "Too many open files")])

    async def flaky_spawn() -> asyncio.subprocess.Process:
        if supervised.pid is not None:  # the first start succeeds, then two restarts fail
            failure = next(failures, None)
            if failure is not None:
                raise failure
        return await spawn()

    monkeypatch.setattr(supervised, "_spawn", flaky_spawn)
    with caplog.at_level(logging.INFO, logger="phigate"):
        await supervised.start()
        try:
            await wait_until(lambda: supervised.restarts >= 1, timeout=30,
                             what="a restart after two failed starts")
        finally:
            await supervised.stop(5)
    failed = events(caplog, "delivery_process_start_failed")
    assert [(f["error"], f["errno"]) for f in failed[:2]] == [("ValueError", None),
                                                             ("OSError", 24)]
