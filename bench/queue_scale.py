"""Queue scale: claim latency and admin paging as the queue grows (not a test; prints figures).

    .venv/bin/python bench/queue_scale.py                                  # 10k, 100k; both
    .venv/bin/python bench/queue_scale.py --sizes 10000,100000,1000000     # the 1M run
    .venv/bin/python bench/queue_scale.py --backends sqlite
    .venv/bin/python bench/queue_scale.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432

For each backend the queue is grown in steps to each size (SQLite: a temp file with the
relay's own engine settings, WAL and synchronous=FULL; PostgreSQL: a throwaway cluster from
tests/helpers/postgres.py, or the server given by --pg-url, on which a database is created
and dropped). Rows are written in bulk, not through ``enqueue``: two recipients per message
over 200 domains, a tiny sealed body each; three quarters of the recipients are due now, a
quarter deferred up to an hour ahead. At each size it times:

- ``SqlQueueStore.claim_due`` of one batch (200, the default ``claim_batch_size``): ten
  claims in a row by one owner (each also skips the leases the earlier ones took), the
  commit included; then the same call when nothing is due (an idle poll);
- the admin service's ``page()`` (what the TUI's queue screen shows, 200 rows): the first
  page, ten next pages, a page near the end, a page filtered by domain, and the count of
  pending recipients that the screen shows above the table.

Leases are released after each step, so every size measures the same shape of queue.
"""

from __future__ import annotations

import argparse
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import func, insert, select, text

from phigate.admin import AdminService, Identity, QueueFilter
from phigate.config import settings_from_mapping
from phigate.queue.crypto import MasterKey
from phigate.queue.db import make_engine, upgrade
from phigate.queue.models import Message, MessageBody, MessageState, Recipient, RecipientState
from phigate.runtime import Runtime

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.postgres import start_cluster

DOMAINS = [f"d{i}.example" for i in range(200)]
BODY = b"From: desk@practice.test\r\nSubject: reminder\r\n\r\nSee you on Monday.\r\n"
PER_MESSAGE = 2
BATCH_MESSAGES = 5_000
CLAIM_BATCH = 200
PAGE = 200  # the TUI queue screen's PAGE_SIZE
CLAIMS = 10
OWNER = "bench-node"


@dataclass
class Row:
    backend: str
    recipients: int
    seed_seconds: float
    size_mib: float
    claim_median: float
    claim_max: float
    claim_idle: float
    first_page: float
    next_page: float
    deep_page: float
    domain_page: float
    count: float


class Seeder:
    """Writes messages with their bodies and recipients in bulk (executemany in batches:
    SQLAlchemy sends multi-row INSERTs), continuing where the last call stopped."""

    def __init__(self, runtime: Runtime, now: datetime) -> None:
        self._runtime = runtime
        self._key = MasterKey.load(runtime.settings.storage.master_key_file)
        self._now = now
        self._rng = random.Random(8)
        self.messages = 0

    def grow_to(self, recipients: int) -> None:
        target = recipients // PER_MESSAGE
        while self.messages < target:
            count = min(BATCH_MESSAGES, target - self.messages)
            self._write(range(self.messages, self.messages + count))
            self.messages += count

    def _write(self, indexes: range) -> None:
        messages: list[dict[str, Any]] = []
        bodies: list[dict[str, Any]] = []
        recipients: list[dict[str, Any]] = []
        for index in indexes:
            message_id = f"{index:011X}{secrets.token_hex(5).upper()}"
            # Older messages first, one every 3 s back from now (the order ids sort in).
            created = self._now - timedelta(seconds=3 * (10_000_000 - index))
            sealed = self._key.seal(BODY, associated_data=message_id.encode())
            messages.append(dict(
                id=message_id, created_at=created, state=MessageState.ACTIVE,
                sender="desk@practice.test", size=len(BODY), message_class="treatment",
                phi_verdict="none", phi_score=0.0, phi_categories=[], rule_hits=[],
                processing_errors=0, key_id=sealed.key_id, wrapped_key=sealed.wrapped_key,
                nonce=sealed.nonce))
            bodies.append(dict(message_id=message_id, ciphertext=sealed.ciphertext))
            for n in range(PER_MESSAGE):
                domain = DOMAINS[(index * PER_MESSAGE + n) % len(DOMAINS)]
                deferred = self._rng.random() < 0.25
                recipients.append(dict(
                    message_id=message_id, address=f"p{index}.{n}@{domain}", domain=domain,
                    state=RecipientState.DEFERRED if deferred else RecipientState.QUEUED,
                    attempts=1 if deferred else 0,
                    next_attempt_at=(self._now + timedelta(seconds=self._rng.uniform(1, 3600))
                                     if deferred else created),
                    last_code=451 if deferred else None,
                    last_text="4.3.0 try again later" if deferred else None))
        with self._runtime.engine.begin() as connection:
            connection.execute(insert(Message), messages)
            connection.execute(insert(MessageBody), bodies)
            connection.execute(insert(Recipient), recipients)


def timed_ms(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return (time.perf_counter() - started) * 1000, result


def median_ms(fn: Callable[[], Any], repeat: int = 5) -> float:
    return statistics.median(timed_ms(fn)[0] for _ in range(repeat))


def measure(runtime: Runtime, service: AdminService, now: datetime) -> dict[str, float]:
    store = runtime.store
    figures: dict[str, float] = {}
    claims = []
    for _ in range(CLAIMS):
        ms, claimed = timed_ms(lambda: store.claim_due(OWNER, now=now, limit=CLAIM_BATCH,
                                                       lease_seconds=300))
        assert len(claimed) == CLAIM_BATCH, len(claimed)
        claims.append(ms)
    store.release_leases(OWNER)
    figures["claim_median"], figures["claim_max"] = statistics.median(claims), max(claims)
    long_ago = now - timedelta(days=3650)  # before every next_attempt_at: nothing is due
    figures["claim_idle"] = median_ms(lambda: store.claim_due(
        OWNER, now=long_ago, limit=CLAIM_BATCH, lease_seconds=300))

    pending = QueueFilter()
    figures["first_page"] = median_ms(lambda: service.page(pending, limit=PAGE))
    first = service.page(pending, limit=PAGE)
    after, steps = first.next_after, []
    for _ in range(10):
        started = time.perf_counter()
        after = service.page(pending, after=after, limit=PAGE).next_after
        steps.append((time.perf_counter() - started) * 1000)
    figures["next_page"] = statistics.median(steps)
    with store.writing() as session:
        last_id = int(session.scalar(select(func.max(Recipient.id))) or 0)
    figures["deep_page"] = median_ms(lambda: service.page(pending, after=last_id - 3 * PAGE,
                                                           limit=PAGE))
    figures["domain_page"] = median_ms(lambda: service.page(QueueFilter(domain="d7.example"),
                                                             limit=PAGE))
    figures["count"] = median_ms(lambda: service.count(pending), repeat=3)
    return figures


def database_mib(runtime: Runtime, sqlite_file: Path | None) -> float:
    if sqlite_file is not None:
        files = [sqlite_file, sqlite_file.with_name(sqlite_file.name + "-wal")]
        return sum(f.stat().st_size for f in files if f.exists()) / 2**20
    with runtime.engine.connect() as connection:
        size = connection.execute(text("SELECT pg_database_size(current_database())")).scalar()
    return int(size or 0) / 2**20


@contextmanager
def postgres_database(server_url: str | None) -> Iterator[str]:
    cluster = None
    if server_url is None:
        cluster = start_cluster()
        if cluster is None:
            raise SystemExit("no PostgreSQL binaries found; use --backends sqlite or --pg-url")
        server_url = cluster.server_url
    name = f"queue_scale_{secrets.token_hex(4)}"
    admin = server_url.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server_url}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if cluster is not None:
            cluster.stop()


def run_backend(backend: str, url: str, sizes: list[int], workdir: Path) -> list[Row]:
    key_file = workdir / f"{backend}.key"
    MasterKey.generate().write(key_file)
    settings = settings_from_mapping({
        "storage": {"url": url, "master_key_file": str(key_file)},
        "admin": {"operators": ["bench"]},
    })
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    runtime = Runtime.open(settings)
    now = datetime.now(UTC)
    service = AdminService(runtime.store, runtime.audit, settings, identity=Identity("bench"),
                           clock=lambda: now)
    seeder = Seeder(runtime, now)
    sqlite_file = Path(url.removeprefix("sqlite:///")) if backend == "sqlite" else None
    rows = []
    try:
        for size in sizes:
            started = time.perf_counter()
            seeder.grow_to(size)
            if backend == "postgresql":
                # Autovacuum would analyse the new rows within a minute; do it now so the
                # planner sees this size, not the last one.
                with runtime.engine.begin() as connection:
                    connection.execute(text("ANALYZE"))
            seeded = time.perf_counter() - started
            figures = measure(runtime, service, now)
            row = Row(backend, size, seeded, database_mib(runtime, sqlite_file), **figures)
            print(f"  {backend} {size:,}: seeded in {seeded:.0f} s; " + ", ".join(
                f"{k} {v:.1f} ms" for k, v in figures.items()), flush=True)
            rows.append(row)
    finally:
        runtime.close()
    return rows


def print_table(rows: list[Row]) -> None:
    print()
    print(f"| backend | recipients | DB MiB | claim {CLAIM_BATCH}: median / max | claim, nothing "
          "due | first page | next page (median of 10) | page near the end | page, one "
          "domain | count pending |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r.backend} | {r.recipients:,} | {r.size_mib:,.0f} | "
              f"{r.claim_median:.1f} / {r.claim_max:.1f} ms | {r.claim_idle:.1f} ms | "
              f"{r.first_page:.1f} ms | {r.next_page:.1f} ms | {r.deep_page:.1f} ms | "
              f"{r.domain_page:.1f} ms | {r.count:.0f} ms |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000",
                        help="queued recipients, comma-separated, grown in this order")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", help="an existing PostgreSQL server (default: a "
                        "throwaway cluster)")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="phigate-queue-scale-"))
    rows: list[Row] = []
    try:
        rows = run_all(args.backends.split(","), sizes, args.pg_url, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(rows)
    return 0


def run_all(backends: list[str], sizes: list[int], pg_url: str | None,
            workdir: Path) -> list[Row]:
    rows: list[Row] = []
    for backend in backends:
        print(f"{backend}: growing to {', '.join(f'{s:,}' for s in sizes)} recipients",
              flush=True)
        if backend == "sqlite":
            rows += run_backend(backend, f"sqlite:///{workdir / 'queue.db'}", sizes, workdir)
        elif backend == "postgresql":
            with postgres_database(pg_url) as url:
                rows += run_backend(backend, url, sizes, workdir)
        else:
            raise SystemExit(f"unknown backend {backend}")
    return rows


if __name__ == "__main__":
    sys.exit(main())
