"""A scanner worker freezes its start-up heap (the model, lexicons and patterns) once built
and warmed up: a full garbage collection over it cost ~200 ms of a scan (issue 16, the
latency tail)."""

from __future__ import annotations

from helpers import scan_fakes

from phigate.config import ScannerSettings
from phigate.phi_scanner import ScannerPool


async def test_a_worker_has_frozen_its_start_up_heap() -> None:
    pool = ScannerPool(ScannerSettings(ner="never", workers=1),
                       scanner_factory=scan_fakes.scripted)
    try:
        await pool.warm_up()
        result = await pool.scan(b"frozen now\r\n")
    finally:
        pool.close(graceful=False)
    (note,) = result.notes
    name, _, count = note.partition("=")
    # Everything the worker had imported and built before its first scan: the interpreter
    # and phigate's modules alone are tens of thousands of objects.
    assert name == "frozen" and int(count) > 10_000
