"""Two delivery processes on one PostgreSQL queue (real processes, real SIGKILL)."""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.smtp_sink import SmtpSink, Stall
from sqlalchemy import func, select

from phigate.queue.crypto import MasterKey
from phigate.queue.db import make_engine, upgrade
from phigate.queue.models import Recipient, RecipientState
from phigate.queue.store import NewMessage, SqlQueueStore

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

NODE = Path(__file__).with_name("node_main.py")
COUNT = 500
WORKERS = 4


@pytest.fixture
def cluster(pg_url: str, tmp_path: Path, dns, sink_factory):
    key_file = tmp_path / "master.key"
    MasterKey.generate().write(key_file)
    engine = make_engine(pg_url)
    upgrade(engine)
    store = SqlQueueStore(engine, MasterKey.load(key_file))
    sink = sink_factory()
    dns.set("example.test", [("MX", "10 mx1.example.test.")])
    dns.set("mx1.example.test", [("A", "127.0.0.1")])
    for index in range(COUNT):
        store.enqueue(NewMessage(sender="clinic@practice.test",
                                 recipients=[f"p{index}@example.test"],
                                 body=f"Subject: n{index}\r\n\r\nhello {index}\r\n".encode()))
    nodes: list[subprocess.Popen[str]] = []

    def start(owner: str, lease_seconds: int) -> subprocess.Popen[str]:
        config = tmp_path / f"{owner}.json"
        config.write_text(json.dumps({"owner": owner, "settings": {
            "server": {"hostname": "relay.practice.test", "domain": "practice.test"},
            "storage": {"url": pg_url, "master_key_file": str(key_file)},
            "delivery": {"dns_servers": [dns.address], "mx_port": sink.port,
                         "lease_seconds": lease_seconds, "workers": WORKERS,
                         "rate_per_minute_per_domain": 60_000,
                         "claim_batch_size": 40, "poll_interval_seconds": 0.2,
                         "connect_timeout_seconds": 5.0, "command_timeout_seconds": 10.0,
                         "shutdown_timeout_seconds": 5.0},
        }}))
        node = subprocess.Popen([sys.executable, str(NODE), str(config)], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        nodes.append(node)
        assert node.stdout is not None and node.stdout.readline().strip() == "ready"
        return node

    yield _Cluster(store, sink, start)
    for node in nodes:
        if node.poll() is None:
            node.kill()
        node.wait()
        if node.stdout is not None:
            node.stdout.close()
    engine.dispose()


class _Cluster:
    def __init__(self, store: SqlQueueStore, sink: SmtpSink, start: Any) -> None:
        self.store, self.sink, self.start = store, sink, start

    def delivered(self) -> int:
        with self.store.writing() as session:
            return int(session.scalar(select(func.count()).select_from(Recipient).where(
                Recipient.state == RecipientState.DELIVERED)) or 0)

    def wait_until(self, condition: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out; delivered={self.delivered()}"
            time.sleep(0.1)

    def copies(self) -> collections.Counter[str]:
        return collections.Counter(r for m in self.sink.messages for r in m.rcpt_tos)


def _stop(node: subprocess.Popen[str]) -> None:
    node.send_signal(signal.SIGTERM)
    assert node.wait(15) == 0


def test_two_nodes_deliver_each_message_exactly_once(cluster) -> None:
    a = cluster.start("node-a", lease_seconds=60)
    b = cluster.start("node-b", lease_seconds=60)
    cluster.wait_until(lambda: cluster.delivered() == COUNT, timeout=120)
    _stop(a)
    _stop(b)

    copies = cluster.copies()
    assert len(copies) == COUNT and set(copies.values()) == {1}
    with cluster.store.writing() as session:
        owners = session.scalar(select(func.count()).select_from(Recipient).where(
            Recipient.lease_owner.is_not(None)))
    assert owners == 0  # graceful stops released everything


def test_a_killed_node_s_work_is_finished_after_its_leases_expire(cluster) -> None:
    cluster.sink.script("DATA", Stall(0.01), times=None)  # keep both nodes busy for a while
    a = cluster.start("node-a", lease_seconds=3)
    b = cluster.start("node-b", lease_seconds=3)
    cluster.wait_until(lambda: len(cluster.sink.messages) >= COUNT // 4, timeout=60)
    a.kill()  # SIGKILL: no graceful stop, leases left behind
    a.wait()
    with cluster.store.writing() as session:
        orphaned = list(session.scalars(select(Recipient.id).where(
            Recipient.lease_owner == "node-a",
            Recipient.state.in_([RecipientState.QUEUED, RecipientState.DEFERRED]))))
    assert orphaned  # node A died holding work

    cluster.wait_until(lambda: cluster.delivered() == COUNT, timeout=120)
    _stop(b)

    copies = cluster.copies()
    assert len(copies) == COUNT  # every message arrived
    duplicates = sum(n - 1 for n in copies.values())
    # At-least-once: only what node A had in flight when it died may arrive twice.
    assert duplicates <= WORKERS
