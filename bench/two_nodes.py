"""Two delivery nodes on one PostgreSQL queue: throughput with one and with two processes.

    .venv/bin/python bench/two_nodes.py                      # 4000 msgs, rounds 1,2,1,2 nodes
    .venv/bin/python bench/two_nodes.py --messages 8000 --rounds 3
    .venv/bin/python bench/two_nodes.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432

Each node is the product's own entry point, ``python -m phigate --config NODE.toml serve
--role delivery``, in its own process. The queue is a throwaway PostgreSQL cluster
(tests/helpers/postgres.py; or --pg-url), a fresh database per run; the destination is
Postfix's ``smtp-sink`` in its own process, MX records from a dnslib server on loopback
(the same sink and zone as bench/delivery_bench.py), DKIM and scanning off, rate limits out
of the way, one recipient per message over ``--domains`` domains.

A run: start the nodes on an empty queue and wait until both say ``delivery_started``;
then commit all messages in one transaction and time until every recipient is delivered.
Figures: msg/s over the wall time from the commit (includes up to one poll interval,
``--poll``, 0.2 s, before the first claim) and over the delivery span (first attempt started to last
recipient final, from the queue's own timestamps); CPU per message of the node processes
during the run (from /proc, start-up excluded); attempts per recipient (1.00 = nothing
delivered twice); each node's share.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import trustme
from dnslib.server import DNSLogger, DNSServer
from sqlalchemy import Engine, func, insert, select

from phigate.queue.crypto import MasterKey
from phigate.queue.db import make_engine, upgrade
from phigate.queue.models import (
    Attempt,
    Message,
    MessageBody,
    MessageState,
    Recipient,
    RecipientState,
)

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))
sys.path.insert(0, str(BENCH))
from delivery_bench import _Zone, free_port, start_sink  # noqa: E402 - sibling script
from helpers.postgres import start_cluster  # noqa: E402 - the test helpers live in tests/


@dataclass
class Run:
    nodes: int
    messages: int
    wall: float
    span: float
    cpu: float
    attempts: int
    shares: list[int]

    @property
    def wall_rate(self) -> float:
        return self.messages / self.wall

    @property
    def span_rate(self) -> float:
        return self.messages / self.span


def node_config(path: Path, *, url: str, key_file: Path, tls: tuple[Path, Path],
                dns_port: int, sink_port: int, workers: int, poll: float,
                state_dir: Path) -> None:
    cert, key = tls
    path.write_text(f"""
[server]
domain = "bench.test"
hostname = "relay.bench.test"
state_dir = "{state_dir}"

[submission]
tls_cert = "{cert}"
tls_key = "{key}"

[storage]
url = "{url}"
master_key_file = "{key_file}"

[scanner]
enabled = false

[delivery]
dns_servers = ["127.0.0.1:{dns_port}"]
mx_port = {sink_port}
workers = {workers}
max_connections_per_domain = 10
rate_per_minute_per_domain = 10000000
poll_interval_seconds = {poll}
""", encoding="utf-8")


def seed(engine: Engine, key: MasterKey, count: int, domains: list[str], size: int) -> None:
    """All messages in one transaction, so they become due at the same instant."""
    line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod. " * 2
    text = (line + "\r\n") * max(1, size // (len(line) + 2))
    now = datetime.now(UTC)
    messages: list[dict[str, Any]] = []
    bodies: list[dict[str, Any]] = []
    recipients: list[dict[str, Any]] = []
    for index in range(count):
        domain = domains[index % len(domains)]
        message_id = f"{index:011X}{secrets.token_hex(5).upper()}"
        body = (f"From: clinic@bench.test\r\nTo: p{index}@{domain}\r\nSubject: bench {index}\r\n"
                f"Message-ID: <{index}@bench.test>\r\n\r\n{text}").encode()
        sealed = key.seal(body, associated_data=message_id.encode())
        messages.append(dict(
            id=message_id, created_at=now, state=MessageState.ACTIVE,
            sender="clinic@bench.test", size=len(body), message_class="treatment",
            phi_verdict="none", phi_score=0.0, phi_categories=[], rule_hits=[],
            processing_errors=0, key_id=sealed.key_id, wrapped_key=sealed.wrapped_key,
            nonce=sealed.nonce))
        bodies.append(dict(message_id=message_id, ciphertext=sealed.ciphertext))
        recipients.append(dict(message_id=message_id, address=f"p{index}@{domain}",
                               domain=domain, state=RecipientState.QUEUED, attempts=0,
                               next_attempt_at=now))
    with engine.begin() as connection:
        connection.execute(insert(Message), messages)
        connection.execute(insert(MessageBody), bodies)
        connection.execute(insert(Recipient), recipients)


def delivered(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(Recipient).where(
            Recipient.state == RecipientState.DELIVERED)) or 0)


def wait_for(path: Path, word: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and word in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise SystemExit(f"node did not log {word} within {timeout} s; see {path}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(node: subprocess.Popen[bytes]) -> None:
    node.send_signal(signal.SIGTERM)
    if node.wait(30) != 0:
        raise SystemExit(f"a node exited with {node.returncode}")


@contextmanager
def postgres_server(server_url: str | None) -> Iterator[str]:
    if server_url is not None:
        yield server_url.rstrip("/")
        return
    cluster = start_cluster()
    if cluster is None:
        raise SystemExit("no PostgreSQL binaries found; give --pg-url")
    try:
        yield cluster.server_url
    finally:
        cluster.stop()


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    name = f"two_nodes_{secrets.token_hex(4)}"
    admin = server_url.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server_url}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def one_run(nodes: int, args: argparse.Namespace, server_url: str, workdir: Path,
            tls: tuple[Path, Path], dns_port: int, sink_port: int,
            domains: list[str]) -> Run:
    key_file = workdir / "master.key"
    with fresh_database(server_url) as url:
        engine = make_engine(url)
        upgrade(engine)
        started: list[tuple[subprocess.Popen[bytes], Path]] = []
        cpu = 0.0
        try:
            for n in range(nodes):
                config, log = workdir / f"node{n}.toml", workdir / f"node{n}.log"
                node_config(config, url=url, key_file=key_file, tls=tls, dns_port=dns_port,
                            sink_port=sink_port, workers=args.workers, poll=args.poll,
                            state_dir=workdir)
                with log.open("wb") as out:
                    node = subprocess.Popen(
                        [sys.executable, "-m", "phigate", "--config", str(config), "serve",
                         "--role", "delivery"], stdout=out, stderr=subprocess.STDOUT)
                started.append((node, log))
            for _, log in started:
                wait_for(log, "delivery_started", 30)
            # CPU from here on: the run, not the interpreter's start and imports.
            cpu = -sum(cpu_seconds(node.pid) for node, _ in started)
            seed(engine, MasterKey.load(key_file), args.messages, domains, args.size)
            committed = time.perf_counter()
            deadline = committed + args.timeout
            while delivered(engine) < args.messages:
                if time.perf_counter() > deadline:
                    raise SystemExit(f"{nodes} node(s): only {delivered(engine)} of "
                                     f"{args.messages} delivered after {args.timeout} s")
                time.sleep(0.05)
            wall = time.perf_counter() - committed
            cpu += sum(cpu_seconds(node.pid) for node, _ in started)
        finally:
            for node, _ in started:
                stop(node)
        with engine.connect() as connection:
            first = connection.scalar(select(func.min(Attempt.started_at)))
            last = connection.scalar(select(func.max(Recipient.final_at)))
            attempts = int(connection.scalar(select(func.count()).select_from(Attempt)) or 0)
        engine.dispose()
    shares = [log.read_text(errors="replace").count("delivery_attempt") for _, log in started]
    assert first is not None and last is not None
    return Run(nodes, args.messages, wall, (last - first).total_seconds(), cpu, attempts,
               shares)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--size", type=int, default=2048, help="body bytes per message")
    parser.add_argument("--domains", type=int, default=5)
    parser.add_argument("--workers", type=int, default=20, help="[delivery] workers per node")
    parser.add_argument("--poll", type=float, default=0.2,
                        help="[delivery] poll_interval_seconds per node")
    parser.add_argument("--rounds", type=int, default=2, help="runs of 1 then 2 nodes")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--pg-url", help="an existing PostgreSQL server (default: a "
                        "throwaway cluster)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="phigate-two-nodes-"))
    MasterKey.generate().write(workdir / "master.key")
    ca = trustme.CA()
    cert = ca.issue_cert("relay.bench.test")
    tls = (workdir / "cert.pem", workdir / "key.pem")
    cert.cert_chain_pems[0].write_to_path(str(tls[0]))
    cert.private_key_pem.write_to_path(str(tls[1]))
    domains = [f"d{i}.bench.test" for i in range(args.domains)]
    dns_port, sink_port = free_port(socket.SOCK_DGRAM), free_port()
    dns = DNSServer(_Zone(domains), address="127.0.0.1", port=dns_port,
                    logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data",
                                     prefix=False))
    dns.start_thread()
    sink, _ = start_sink(sink_port, False, workdir)
    runs: list[Run] = []
    try:
        with postgres_server(args.pg_url) as server_url:
            for _ in range(args.rounds):
                for nodes in (1, 2):
                    run = one_run(nodes, args, server_url, workdir, tls, dns_port, sink_port,
                                  domains)
                    runs.append(run)
                    print(f"{nodes} node(s): {run.messages} delivered in {run.wall:.2f} s "
                          f"wall ({run.wall_rate:.0f} msg/s), span {run.span:.2f} s "
                          f"({run.span_rate:.0f} msg/s); node CPU "
                          f"{run.cpu / run.messages * 1000:.2f} ms/msg; attempts/recipient "
                          f"{run.attempts / run.messages:.2f}; shares {run.shares}",
                          flush=True)
    finally:
        sink.terminate()
        sink.wait(10)
        dns.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    one = statistics.median(r.wall_rate for r in runs if r.nodes == 1)
    two = statistics.median(r.wall_rate for r in runs if r.nodes == 2)
    one_span = statistics.median(r.span_rate for r in runs if r.nodes == 1)
    two_span = statistics.median(r.span_rate for r in runs if r.nodes == 2)
    print()
    print(f"messages={args.messages} size={args.size} domains={args.domains} "
          f"workers/node={args.workers} poll={args.poll}s rounds={args.rounds} (median of rounds)")
    print("| delivery processes | msg/s (wall from commit) | msg/s (delivery span) |")
    print("|---|---:|---:|")
    print(f"| 1 | {one:.0f} | {one_span:.0f} |")
    print(f"| 2 | {two:.0f} | {two_span:.0f} |")
    print(f"| ratio 2/1 | {two / one:.2f} | {two_span / one_span:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
