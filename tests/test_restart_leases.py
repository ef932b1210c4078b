"""Issue 14 finding 7: after ``kill -9`` of a single-node ``serve`` the recipients it had
claimed stayed leased for ``lease_seconds`` (300 s) and its scanner workers lived on.

Now the lease owner is the stable ``[server] node_name`` (default: the host name) and a
restarted node gives back the leases of its previous run. The test runs ``serve`` as a
process with mail in flight to a sink that stalls every DATA, SIGKILLs it, restarts it with
the sink answering again, and sees every message delivered within seconds, with the
default 300 s lease; no process of the killed ``serve`` (scanner workers) is left.
"""

from __future__ import annotations

import os
import signal
import smtplib
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.net import free_port
from helpers.processes import alive, descendants
from helpers.relay_process import install_with_user, start_relay
from helpers.smtp_sink import SmtpSink, Stall

MESSAGES = 4
RESUME_WITHIN = 30.0  # seconds; the lease is 300


def submit(port: int, context: ssl.SSLContext, count: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.starttls(context=context)
        client.login("ehr", "pw")
        for index in range(count):
            client.sendmail("ehr@practice.test", [f"p{index}@example.org"],
                            f"From: ehr@practice.test\r\nTo: p{index}@example.org\r\n"
                            f"Subject: restart\r\n\r\nbody RESTART-{index}\r\n".encode())


def wait_for(condition: Callable[[], object], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_restart_takes_back_the_leases_of_a_killed_run(tmp_path: Path) -> None:
    config, context = install_with_user(tmp_path)
    sink = SmtpSink(free_port()).start()
    sink.script("DATA", Stall(60, "451 4.3.0 slow"), times=None)  # in flight until killed
    port = free_port()
    env = {**os.environ, "PHIGATE_SUBMISSION__LISTEN": f"127.0.0.1:{port}",
           "PHIGATE_SCANNER__WORKERS": "1", "PHIGATE_SERVER__NODE_NAME": "node-a",
           "PHIGATE_DELIVERY__SMARTHOST": f"127.0.0.1:{sink.port}",
           "PHIGATE_DELIVERY__POLL_INTERVAL_SECONDS": "0.2"}
    relay = start_relay(config, port, roles="smtp,delivery", env=env)
    try:
        children = descendants(relay.pid)
        assert children, "serve started no scanner worker"
        submit(port, context, MESSAGES)
        assert wait_for(lambda: sum(c == "DATA" for c, _ in sink.commands) >= MESSAGES, 30)
        relay.send_signal(signal.SIGKILL)
        relay.wait(10)
        assert wait_for(lambda: not any(alive(pid) for pid in children), 10), \
            "a process of the killed serve outlived it"

        sink.clear_scripts()
        restarted = time.monotonic()
        relay = start_relay(config, port, roles="smtp,delivery", env=env)
        delivered = wait_for(lambda: len({m.rcpt_tos for m in sink.messages}) >= MESSAGES,
                             RESUME_WITHIN)
        took = time.monotonic() - restarted
        assert delivered, f"not delivered within {RESUME_WITHIN} s of the restart"
        print(f"\nrestart: {MESSAGES} messages in flight at the kill delivered "
              f"{took:.1f} s after the restart (lease_seconds 300)")
        assert "delivery_leases_taken_back" in (tmp_path / "relay.log").read_text()
    finally:
        relay.terminate()  # a stalled delivery may hold it for shutdown_timeout (30 s)
        try:
            relay.wait(45)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait(10)
        sink.stop()
