"""Issue 14, done means: SIGTERM ends ``serve`` within ``shutdown_timeout_seconds`` whatever a
worker is doing, gives back the leases it held and loses nothing.

A real ``phigate serve`` process (submission over STARTTLS, one scanner worker, and delivery
in its child process) takes a message whose delivery is stuck, in one of two ways:

* ``stalled_remote``: the receiving server accepts the message and never answers the end of
  DATA (the realistic case);
* ``stuck_prepare``: the message's prepare step (DKIM signing) spins on the CPU for ever, as
  dkimpy did on a poison header; a ``sitecustomize`` on the subprocess's path makes it so
  (tests/faults/stuck_prepare), the product has no hook for it.

At the same time the practice's application keeps its pooled connection open, logged in and
idle, as EHRs do. SIGTERM must end the process in one grace period (not one for the sessions
and then another for the deliveries), with exit status 0; the queue database must show the
message still queued with its lease cleared, and a restart must deliver it.
"""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.net import free_port
from helpers.processes import alive
from helpers.relay_process import delivery_children, install_with_user, start_relay
from helpers.smtp_sink import SmtpSink, Stall
from sqlalchemy import create_engine, text

from phigate.config.loading import load_settings

GRACE = 4.0  # [delivery] shutdown_timeout_seconds
#: Delivery has stopped and released its leases this soon after the grace period.
RELEASED_WITHIN = 1.5
#: The process is gone this soon after it: closing the scanner worker and Python's own
#: exit took 1-1.5 s at a load average of 6 on two cores.
MARGIN = 4.0
BODY = (b"From: ehr@practice.test\r\nTo: jane@example.org\r\nSubject: sigterm\r\n\r\n"
        b"body SIGTERM-1 %s\r\n")
STUCK_PREPARE = Path(__file__).with_name("stuck_prepare")


def wait_for(condition: Callable[[], object], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def stopped_delivery_at(log: str) -> datetime:
    """When delivery said it had stopped and given back its leases (the log's clock)."""
    [line] = [line for line in log.splitlines() if "event=delivery_stopped" in line]
    return datetime.fromisoformat(line.split()[0].removeprefix("ts="))


def recipient_rows(config: Path) -> list[tuple[str, str | None, object, str]]:
    """(recipient state, lease owner, lease until, message state) of every recipient."""
    engine = create_engine(load_settings(config, environ={}).storage.url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT r.state, r.lease_owner, r.lease_until, m.state FROM recipients r "
                "JOIN messages m ON m.id = r.message_id")).all()
    finally:
        engine.dispose()
    return [(str(state), owner, until, str(message)) for state, owner, until, message in rows]


@pytest.mark.slow
@pytest.mark.parametrize("stuck", ["stalled_remote", "stuck_prepare"])
def test_sigterm_with_a_stuck_delivery_and_an_idle_client_ends_in_one_grace(
        tmp_path: Path, stuck: str) -> None:
    config, context = install_with_user(tmp_path)
    sink = SmtpSink(free_port()).start()
    port = free_port()
    env = {**os.environ, "PHIGATE_SUBMISSION__LISTEN": f"127.0.0.1:{port}",
           "PHIGATE_SCANNER__WORKERS": "1", "PHIGATE_SERVER__NODE_NAME": "node-a",
           "PHIGATE_DELIVERY__SMARTHOST": f"127.0.0.1:{sink.port}",
           "PHIGATE_DELIVERY__POLL_INTERVAL_SECONDS": "0.2",
           "PHIGATE_DELIVERY__SHUTDOWN_TIMEOUT_SECONDS": str(GRACE)}
    mark = tmp_path / "prepare-stuck"

    def in_flight() -> bool:
        return mark.exists() if stuck == "stuck_prepare" else ("DATA", "") in sink.commands

    first_run = env
    if stuck == "stalled_remote":
        sink.script("DATA", Stall(120, "451 4.3.0 slow"), times=None)  # never in time
    else:
        paths = [str(STUCK_PREPARE), *filter(None, [os.environ.get("PYTHONPATH")])]
        first_run = {**env, "PYTHONPATH": os.pathsep.join(paths),
                     "PHIGATE_TEST_STUCK_MARK": str(mark)}
    relay = start_relay(config, port, roles="smtp,delivery", env=first_run)
    pooled = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        pooled.starttls(context=context)
        pooled.login("ehr", "pw")
        pooled.sendmail("ehr@practice.test", ["jane@example.org"],
                        BODY % (b"STUCK-PREPARE" if stuck == "stuck_prepare" else b""))
        # The delivery is stuck now; the application's connection stays open.
        assert wait_for(in_flight, 30), f"the delivery never got stuck ({stuck})"
        [(_, owner, until, _)] = recipient_rows(config)
        assert owner is not None and owner.startswith("node-a:") and until is not None

        signalled, signalled_at = time.monotonic(), datetime.now(UTC)
        relay.send_signal(signal.SIGTERM)
        try:
            status = relay.wait(GRACE + 30)
        except subprocess.TimeoutExpired:
            pytest.fail("serve did not end within 30 s of its grace period after SIGTERM")
        took = time.monotonic() - signalled
        log = (tmp_path / "relay.log").read_text()
        released = (stopped_delivery_at(log) - signalled_at).total_seconds()
        print(f"\nSIGTERM ({stuck}): leases released {released:.2f} s and serve ended "
              f"{took:.2f} s after the signal (shutdown_timeout_seconds {GRACE:g}), "
              f"status {status}")
        assert status == 0, log[-3000:]
        # Delivery ran in serve's child process: it ended too, having said it stopped.
        [child] = delivery_children(log)
        assert not alive(child) and f"delivery_process_stopped pid={child} status=0" in log
        # One grace period, not one for the sessions and then one for the deliveries.
        assert released <= GRACE + RELEASED_WITHIN, log[-3000:]
        assert took <= GRACE + MARGIN, f"took {took:.2f} s\n{log[-3000:]}"
        assert "released=1" in log, log[-3000:]

        [(state, owner, until, message_state)] = recipient_rows(config)
        assert (owner, until) == (None, None), "the stopped relay kept its lease"
        assert state in ("queued", "deferred") and message_state == "active"
        assert sink.messages == []

        sink.clear_scripts()
        relay = start_relay(config, port, roles="smtp,delivery", env=env)  # unstuck
        assert wait_for(lambda: sink.messages, 30), "not delivered after the restart"
        assert b"body SIGTERM-1" in sink.messages[0].content
        assert wait_for(lambda: recipient_rows(config)[0][0] == "delivered", 10)
    finally:
        pooled.close()
        relay.terminate()
        try:
            relay.wait(GRACE + 30)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait(10)
        sink.stop()
