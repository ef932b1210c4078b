"""A scan's time limit starts when a worker takes the message, not when it is queued."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from phigate.config import ScannerSettings
from phigate.phi_scanner import Scanner, ScannerPool

# A message that takes a measurable while to scan (many distinct paragraphs, no cache hits).
BODY = "\r\n\r\n".join(
    f"Visit {n}: Mrs. Alvarez-{n} was seen on 03/{n % 28 + 1:02d}/2026 for diabetes, "
    f"A1c {n % 9 + 5}.{n % 10}%, call 555-0{n % 10}{n % 7}-{1000 + n}." for n in range(80))
MESSAGE = (b"From: clinic@example.org\r\nTo: p@example.net\r\nSubject: visits\r\n\r\n"
           + BODY.encode() + b"\r\n")


async def test_queued_scans_do_not_run_out_their_clock_waiting_for_a_worker() -> None:
    settings = replace(ScannerSettings(ner="never", workers=1), cache_paragraphs=0)
    scanner = Scanner(settings)
    scanner.scan_message(MESSAGE)  # warm, as a worker is after warm_up
    started = time.process_time()
    scanner.scan_message(MESSAGE)
    one_scan = time.process_time() - started
    # Each scan fits its limit ten times over; a hundred queued on one worker would not fit
    # it if the clock ran from the queueing.
    pool = ScannerPool(settings)
    try:
        await pool.warm_up()  # the worker starts (vocabularies load) under the default limit
        pool.settings = replace(settings, timeout_seconds=max(10 * one_scan, 0.05))
        results = await asyncio.gather(*(pool.scan(MESSAGE) for _ in range(100)))
    finally:
        pool.close()
    assert [r.unscannable for r in results] == [False] * 100
    assert all(r.verdict == "phi" for r in results)
