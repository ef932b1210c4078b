"""SIGKILL during group commits (issue 16 item 4): twelve connections keep several messages
waiting for each commit, so the kill lands while batches are being written; every message
that got its 250 is in the queue after the restart, and nothing else was acknowledged."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from helpers.net import free_port
from helpers.relay_process import install_with_user, start_relay
from test_crash_safety import Sender, relay_env

from phigate.config import load_settings
from phigate.runtime import Runtime

TOTAL = 600
CONNECTIONS = 12


@pytest.mark.slow
def test_sigkill_during_group_commits_loses_no_acknowledged_message(tmp_path: Path) -> None:
    config, context = install_with_user(tmp_path)
    port = free_port()
    relay = start_relay(config, port, roles="smtp", env=relay_env(port))

    tokens = [f"GROUP-{index:04d}" for index in range(TOTAL)]
    senders = [Sender(port, context, tokens[i::CONNECTIONS]) for i in range(CONNECTIONS)]
    for sender in senders:
        sender.start()
    deadline = time.monotonic() + 60
    while sum(len(s.acked) for s in senders) < TOTAL // 4 and time.monotonic() < deadline:
        time.sleep(0.005)
    relay.send_signal(signal.SIGKILL)
    relay.wait()
    for sender in senders:
        sender.join(timeout=15)
    acked = {token: qid for s in senders for token, qid in s.acked.items()}
    assert TOTAL // 4 <= len(acked) < TOTAL, "the kill should land mid-stream"

    runtime = Runtime.open(load_settings(config))
    try:
        for token, queue_id in acked.items():
            assert f"body {token}".encode() in runtime.store.read_body(queue_id)
        # Messages committed but not acknowledged (killed between commit and 250) may be
        # there too, at most one batch per connection; nothing acknowledged is missing.
        assert sum(runtime.store.count_messages().values()) >= len(acked)
    finally:
        runtime.close()
