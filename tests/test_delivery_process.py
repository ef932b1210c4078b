"""Issue 16: ``phigate serve`` runs delivery in a child process of its own (one GIL each).

A real ``serve`` with the default roles, as systemd starts it: a message submitted over
STARTTLS reaches a loopback sink through the child; the parent's /metrics shows the child's
delivered counter; ``kill -9`` of the child is logged and the child restarted, and later
mail still goes out; SIGTERM ends both; ``kill -9`` of the parent leaves no orphan; and
``[delivery] separate_process = false`` keeps one process. The SIGTERM bound and the lease
release with a stuck delivery are tests/faults/test_sigterm.py (two processes too now).
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.net import free_port
from helpers.processes import alive, command_line, descendants
from helpers.relay_process import delivery_children, install_with_user, start_relay
from helpers.smtp_sink import SmtpSink
from helpers.wait import wait_until_sync
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]


@dataclass
class Relay:
    config: Path
    context: ssl.SSLContext
    sink: SmtpSink
    env: dict[str, str]
    port: int
    http_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> str:
        return self.config.with_name("relay.log").read_text()

    def start(self, **overrides: str) -> subprocess.Popen[bytes]:
        self.process = start_relay(self.config, self.port, roles=None,
                                   env={**self.env, **overrides})
        return self.process

    def submit(self, tag: str) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            client.starttls(context=self.context)
            client.login("ehr", "pw")
            client.sendmail("ehr@practice.test", ["jane@example.org"],
                            b"From: ehr@practice.test\r\nTo: jane@example.org\r\n"
                            b"Subject: child\r\n\r\nbody " + tag.encode() + b"\r\n")

    def delivered(self, tag: str) -> bool:
        return any(b"body " + tag.encode() in m.content for m in self.sink.messages)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}",
                                        timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def metric(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples with ``labels`` in the parent's /metrics."""
        _, body = self.get("/metrics")
        return sum(sample.value for family in text_string_to_metric_families(body.decode())
                   for sample in family.samples if sample.name == name
                   and all(sample.labels.get(k) == v for k, v in labels.items()))

    def children(self, count: int) -> list[int]:
        """The first ``count`` delivery child pids serve logged (waiting for them)."""
        wait_until_sync(lambda: len(delivery_children(self.log)) >= count, timeout=30,
                        what=f"{count} delivery child(ren) started")
        return delivery_children(self.log)[:count]


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    config, context = install_with_user(tmp_path)
    sink = SmtpSink(free_port()).start()
    port, http_port = free_port(), free_port()
    env = {**os.environ, "PHIGATE_SUBMISSION__LISTEN": f"127.0.0.1:{port}",
           "PHIGATE_HTTP__LISTEN": f"127.0.0.1:{http_port}",
           "PHIGATE_FEEDBACK__LISTEN": f"127.0.0.1:{free_port()}",
           # What is measured here is the process layout: no scanner workers in the tree.
           "PHIGATE_SCANNER__ENABLED": "false",
           "PHIGATE_SERVER__NODE_NAME": "node-a",
           "PHIGATE_DELIVERY__SMARTHOST": f"127.0.0.1:{sink.port}",
           "PHIGATE_DELIVERY__POLL_INTERVAL_SECONDS": "0.2",
           "PHIGATE_DELIVERY__SHUTDOWN_TIMEOUT_SECONDS": "5"}
    running = Relay(config, context, sink, env, port, http_port)
    try:
        yield running
    finally:
        process = running.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)
        for pid in delivery_children(running.log):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        sink.stop()


def test_serve_delivers_through_a_child_that_is_restarted_after_a_kill(relay: Relay) -> None:
    serve = relay.start()
    [child] = relay.children(1)
    assert child != serve.pid and child in descendants(serve.pid)
    arguments = command_line(child)
    assert arguments[arguments.index("--role") + 1] == "delivery"

    relay.submit("FIRST")
    wait_until_sync(lambda: relay.delivered("FIRST"), timeout=30, what="FIRST delivered")
    # The parent's /metrics shows what the child counted.
    wait_until_sync(lambda: relay.metric("phigate_recipients_total", outcome="delivered") == 1,
                    timeout=10, what="the child's delivered counter in the parent's /metrics")
    assert relay.metric("phigate_delivery_process_metrics_up") == 1
    assert relay.metric("phigate_delivery_process_up") == 1
    status, body = relay.get("/healthz")
    assert status == 200 and json.loads(body)["checks"]["delivery"] is True
    assert "proc=delivery event=delivery_started" in relay.log

    os.kill(child, signal.SIGKILL)
    [_, restarted] = relay.children(2)
    assert restarted != child and not alive(child) and restarted in descendants(serve.pid)
    assert f"event=delivery_process_exited pid={child} signal=SIGKILL" in relay.log
    wait_until_sync(lambda: relay.metric("phigate_delivery_process_restarts_total") == 1,
                    timeout=10, what="the restart counted")
    relay.submit("SECOND")
    wait_until_sync(lambda: relay.delivered("SECOND"), timeout=30, what="SECOND delivered")
    status, body = relay.get("/healthz")
    assert status == 200 and json.loads(body)["checks"]["delivery"] is True

    serve.send_signal(signal.SIGTERM)
    assert serve.wait(60) == 0, relay.log[-3000:]
    assert not alive(restarted)
    assert f"event=delivery_process_stopped pid={restarted} status=0" in relay.log
    assert relay.log.count("event=delivery_stopped") == 1  # the killed child never said it
    # The DNS checks at start ran once, in serve (by now the children would have said too).
    wait_until_sync(lambda: "event=dns_check_done" in relay.log
                    or "event=dns_check_failed" in relay.log, timeout=30, what="DNS checks")
    dns_lines = [line for line in relay.log.splitlines() if "event=dns_check" in line]
    assert not any("proc=delivery" in line for line in dns_lines)
    assert sum("event=dns_check_done" in line or "event=dns_check_failed" in line
               for line in dns_lines) == 1
    assert len(relay.sink.messages) == 2


def test_no_delivery_child_outlives_a_kill_of_serve(relay: Relay) -> None:
    serve = relay.start()
    [child] = relay.children(1)
    wait_until_sync(lambda: "proc=delivery event=delivery_started" in relay.log, timeout=30,
                    what="the child running")
    serve.send_signal(signal.SIGKILL)
    serve.wait(10)
    wait_until_sync(lambda: not alive(child), timeout=5, what="the orphaned child ending")


def test_separate_process_false_keeps_delivery_in_serve(relay: Relay) -> None:
    serve = relay.start(PHIGATE_DELIVERY__SEPARATE_PROCESS="false")
    relay.submit("ONE")
    wait_until_sync(lambda: relay.delivered("ONE"), timeout=30, what="ONE delivered")
    assert descendants(serve.pid) == set()
    assert delivery_children(relay.log) == []
    status, body = relay.get("/healthz")
    assert status == 200 and "delivery" not in json.loads(body)["checks"]
    assert relay.metric("phigate_recipients_total", outcome="delivered") == 1
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(60) == 0


@pytest.mark.parametrize("separate", ["true", "false"])
def test_accepted_mail_goes_out_at_once_not_at_the_next_poll(
        relay: Relay, separate: str) -> None:
    # An hour between polls: only the new-mail wake-up can deliver within the test.
    serve = relay.start(PHIGATE_DELIVERY__POLL_INTERVAL_SECONDS="3600",
                        PHIGATE_DELIVERY__SEPARATE_PROCESS=separate)
    wait_until_sync(lambda: "event=delivery_started" in relay.log, timeout=30,
                    what="delivery's first claim")
    for tag in ("WAKE1", "WAKE2", "WAKE3"):  # each after the last went out: loop idle
        relay.submit(tag)
        wait_until_sync(lambda tag=tag: relay.delivered(tag), timeout=30,  # type: ignore[misc]
                        what=f"{tag} delivered without a poll")
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(60) == 0


def autogroup(pid: int) -> tuple[str, int] | None:
    """``pid``'s autogroup and its nice value (``/autogroup-N nice V``), None without them.

    The file is absent without autogroup scheduling, and empty for a process of a session
    that never got an autogroup of its own (the init session, as in a CI container).
    """
    try:
        fields = Path(f"/proc/{pid}/autogroup").read_text().split()
    except OSError:
        return None
    if len(fields) != 3:
        return None
    name, _, nice = fields
    return name, int(nice)


def niceness_of_threads(pid: int) -> set[int]:
    """The nice value of every thread of ``pid`` (a thread's is its own on Linux)."""
    values = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        # Field 19 of stat; counted after the command name's ")" (which may hold spaces).
        values.add(int((task / "stat").read_text().rpartition(")")[2].split()[16]))
    return values


@pytest.mark.parametrize(("setting", "increment"), [(None, 10), ("0", 0), ("3", 3)])
def test_the_delivery_child_runs_process_nice_levels_below_serve(
        relay: Relay, setting: str | None, increment: int) -> None:
    overrides = {} if setting is None else {"PHIGATE_DELIVERY__PROCESS_NICE": setting}
    serve = relay.start(**overrides)
    [child] = relay.children(1)
    wait_until_sync(lambda: "proc=delivery event=started" in relay.log, timeout=30,
                    what="the child's start-up over")
    [base] = niceness_of_threads(serve.pid)
    # Every thread of the child: its pools' threads inherit the main thread's niceness.
    assert niceness_of_threads(child) == {min(19, base + increment)}
    # The child's session is its own: with autogroup scheduling, its nice value is what
    # the scheduler weighs against serve's (bench/RESULTS.md, issue 16).
    child_group = autogroup(child)
    if child_group is not None:
        serve_group = autogroup(serve.pid)
        assert serve_group is None or child_group[0] != serve_group[0]
        assert child_group[1] == min(19, base + increment)
    relay.submit("NICE")
    wait_until_sync(lambda: relay.delivered("NICE"), timeout=30, what="NICE delivered")
    # Both processes froze their start-up heap out of garbage collection (phigate.heap).
    started = [line for line in relay.log.splitlines() if "event=started" in line]
    assert len(started) == 2
    assert all(int(line.partition("frozen_objects=")[2].split()[0]) > 10_000
               for line in started)
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(60) == 0
