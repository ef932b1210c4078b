"""Admin listing and TUI paging with 100,000 queued recipients (issue 6, "Done means").

Seeds a queue in bulk (SQLite by default, PostgreSQL with --url), then times:
the service's first page, the next 20 pages, a page near the end, a page back, the filtered
count, the dashboard and qshape figures; and, headless, the TUI's queue screen: first render
and each page key press. Prints the figures; it is not a test.

    .venv/bin/python bench/tui_paging.py [--recipients 100000] [--url postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from phigate.admin import AdminService, Identity, QueueFilter
from phigate.admin_tui.app import AdminApp
from phigate.admin_tui.screens.queue import PAGE_SIZE, QueueScreen
from phigate.config import settings_from_mapping
from phigate.queue.crypto import MasterKey
from phigate.queue.db import make_engine, upgrade
from phigate.queue.models import Message, MessageBody, MessageState, Recipient, RecipientState
from phigate.runtime import Runtime

DOMAINS = [f"d{i}.example" for i in range(200)]
BODY = b"From: desk@practice.test\r\nSubject: reminder\r\n\r\nSee you on Monday.\r\n"


def seed(runtime: Runtime, recipients: int, per_message: int = 2) -> None:
    """Rows written in bulk: 50,000 single commits would measure fsync, not the admin."""
    key = MasterKey.load(runtime.settings.storage.master_key_file)
    now = datetime.now(UTC)
    batch_messages: list[dict[str, Any]] = []
    batch_bodies: list[dict[str, Any]] = []
    batch_recipients: list[dict[str, Any]] = []

    def flush() -> None:
        with runtime.engine.begin() as connection:
            connection.execute(insert(Message), batch_messages)
            connection.execute(insert(MessageBody), batch_bodies)
            connection.execute(insert(Recipient), batch_recipients)
        batch_messages.clear()
        batch_bodies.clear()
        batch_recipients.clear()

    for index in range(recipients // per_message):
        message_id = f"{index:011X}{secrets.token_hex(5).upper()}"
        created = now - timedelta(seconds=(recipients - index) * 3)
        sealed = key.seal(BODY, associated_data=message_id.encode())
        batch_messages.append(dict(
            id=message_id, created_at=created, state=MessageState.ACTIVE,
            sender="desk@practice.test", size=len(BODY), message_class="treatment",
            phi_verdict="none", phi_score=0.0, phi_categories=[], rule_hits=[],
            processing_errors=0, key_id=sealed.key_id, wrapped_key=sealed.wrapped_key,
            nonce=sealed.nonce))
        batch_bodies.append(dict(message_id=message_id, ciphertext=sealed.ciphertext))
        for n in range(per_message):
            domain = DOMAINS[(index * per_message + n) % len(DOMAINS)]
            deferred = (index + n) % 4 == 0
            batch_recipients.append(dict(
                message_id=message_id, address=f"p{index}.{n}@{domain}", domain=domain,
                state=RecipientState.DEFERRED if deferred else RecipientState.QUEUED,
                attempts=1 if deferred else 0, next_attempt_at=created,
                last_code=451 if deferred else None,
                last_text="4.7.1 try again later" if deferred else None))
        if len(batch_messages) >= 5000:
            flush()
    if batch_messages:
        flush()


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, result


async def tui_times(service: AdminService, pages: int) -> tuple[float, list[float]]:
    app = AdminApp(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        start = time.perf_counter()
        await pilot.press("2")
        await pilot.pause()
        first = (time.perf_counter() - start) * 1000
        screen = app.screen
        assert isinstance(screen, QueueScreen)
        presses = []
        for _ in range(pages):
            start = time.perf_counter()
            await pilot.press("n")
            await pilot.pause()
            presses.append((time.perf_counter() - start) * 1000)
        assert screen.page is not None and len(screen.page.rows) == PAGE_SIZE
    return first, presses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--url", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="phigate-bench-"))
    key_file = directory / "master.key"
    MasterKey.generate().write(key_file)
    url = args.url or f"sqlite:///{directory / 'queue.db'}"
    settings = settings_from_mapping({
        "storage": {"url": url, "master_key_file": str(key_file)},
        "admin": {"operators": ["bench"]},
    })
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    runtime = Runtime.open(settings)
    start = time.perf_counter()
    seed(runtime, args.recipients)
    print(f"backend {runtime.engine.dialect.name}; seeded {args.recipients} queued recipients "
          f"in {time.perf_counter() - start:.1f} s")
    service = AdminService(runtime.store, runtime.audit, settings, identity=Identity("bench"))
    pending = QueueFilter()

    ms, first = timed(lambda: service.page(pending, limit=PAGE_SIZE), repeat=5)
    print(f"service first page ({PAGE_SIZE} rows):           {ms:7.1f} ms")
    after = first.next_after
    steps = []
    for _ in range(20):
        step_ms, page = timed(lambda a=after: service.page(pending, after=a, limit=PAGE_SIZE))
        steps.append(step_ms)
        after = page.next_after
    print(f"service next page x20: median {statistics.median(steps):6.1f} ms, "
          f"max {max(steps):6.1f} ms")
    with runtime.store.writing() as session:
        from sqlalchemy import func, select
        last_id = session.scalar(select(func.max(Recipient.id)))
    ms, deep = timed(lambda: service.page(pending, after=last_id - 300, limit=PAGE_SIZE), 5)
    print(f"service page near the end (id {last_id - 300}):    {ms:7.1f} ms "
          f"({len(deep.rows)} rows)")
    ms, _ = timed(lambda: service.page(pending, before=deep.prev_before, limit=PAGE_SIZE), 5)
    print(f"service page back from there:               {ms:7.1f} ms")
    domain = QueueFilter(domain="d7.example")
    ms, _ = timed(lambda: service.page(domain, limit=PAGE_SIZE), 5)
    print(f"service first page, domain filter:          {ms:7.1f} ms")
    older = QueueFilter(older_than=timedelta(days=2), state="deferred")
    ms, _ = timed(lambda: service.page(older, limit=PAGE_SIZE), 5)
    print(f"service first page, deferred + older 2d:    {ms:7.1f} ms")
    ms, total = timed(lambda: service.count(pending), 5)
    print(f"count of pending recipients ({total}):     {ms:7.1f} ms")
    ms, _ = timed(service.dashboard, 3)
    print(f"dashboard figures:                          {ms:7.1f} ms")
    ms, _ = timed(service.shape, 3)
    print(f"qshape (200 domains):                       {ms:7.1f} ms")
    tui_first, presses = asyncio.run(tui_times(service, 10))
    print(f"TUI queue screen first render (keypress to table): {tui_first:6.0f} ms")
    print(f"TUI next page keypress x10: median {statistics.median(presses):.0f} ms, "
          f"max {max(presses):.0f} ms")
    runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
