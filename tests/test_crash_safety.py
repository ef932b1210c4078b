"""SIGKILL the relay mid-stream: every message that got a 250 is in the queue and readable."""

from __future__ import annotations

import os
import signal
import smtplib
import ssl
import threading
import time
from pathlib import Path

import pytest
from helpers.net import free_port
from helpers.relay_process import install_with_user, start_relay

from phigate.config import load_settings
from phigate.runtime import Runtime

TOTAL = 300
CONNECTIONS = 4


def relay_env(port: int) -> dict[str, str]:
    return {**os.environ, "PHIGATE_SUBMISSION__LISTEN": f"127.0.0.1:{port}",
            "PHIGATE_SCANNER__ENABLED": "false"}


class Sender(threading.Thread):
    """Sends messages on one connection until told to stop or the server dies."""

    def __init__(self, port: int, context: ssl.SSLContext, tokens: list[str]) -> None:
        super().__init__(daemon=True)
        self.port, self.context, self.tokens = port, context, tokens
        self.acked: dict[str, str] = {}  # token -> queue id

    def run(self) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
                client.starttls(context=self.context)
                client.login("ehr", "pw")
                for token in self.tokens:
                    body = (f"From: ehr@practice.test\r\nTo: p@example.org\r\n"
                            f"Subject: crash test\r\n\r\nbody {token}\r\n").encode()
                    client.mail("ehr@practice.test")
                    client.rcpt("p@example.org")
                    code, reply = client.data(body)
                    if code == 250:
                        self.acked[token] = reply.decode().rsplit(" ", 1)[1]
        except (OSError, smtplib.SMTPException):
            return  # the server was killed: what was acknowledged is recorded


@pytest.mark.slow
def test_sigkill_mid_stream_loses_no_acknowledged_message(tmp_path: Path) -> None:
    config, context = install_with_user(tmp_path)
    port = free_port()
    relay = start_relay(config, port, roles="smtp", env=relay_env(port))

    tokens = [f"CRASH-{index:04d}" for index in range(TOTAL)]
    senders = [Sender(port, context, tokens[i::CONNECTIONS]) for i in range(CONNECTIONS)]
    for sender in senders:
        sender.start()
    # Kill the relay once a good part of the stream was acknowledged, mid-flight.
    deadline = time.monotonic() + 60
    while sum(len(s.acked) for s in senders) < TOTAL // 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    relay.send_signal(signal.SIGKILL)
    relay.wait()
    for sender in senders:
        sender.join(timeout=15)
    acked = {token: qid for s in senders for token, qid in s.acked.items()}
    assert TOTAL // 3 <= len(acked) < TOTAL, "the kill should land mid-stream"

    # Restart on the same files: recovery, then every acknowledged message is there.
    relay = start_relay(config, port, roles="smtp", env=relay_env(port))
    try:
        runtime = Runtime.open(load_settings(config))
        try:
            for token, queue_id in acked.items():
                assert f"body {token}".encode() in runtime.store.read_body(queue_id)
        finally:
            runtime.close()
        # ...and the relay takes mail again after the crash.
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.starttls(context=context)
            client.login("ehr", "pw")
            client.mail("ehr@practice.test")
            client.rcpt("p@example.org")
            code, _ = client.data(b"From: ehr@practice.test\r\nSubject: after\r\n\r\nok\r\n")
            assert code == 250
    finally:
        relay.terminate()
        relay.wait(timeout=30)
