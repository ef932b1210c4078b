"""A scanner worker freezes its start-up heap (the model, lexicons and patterns) once built:
a full garbage collection over it cost ~200 ms of a scan (issue 16, the latency tail)."""

from __future__ import annotations

import asyncio
import gc

from phigate.config import ScannerSettings
from phigate.phi_scanner import ScannerPool


async def test_a_worker_has_frozen_its_start_up_heap() -> None:
    pool = ScannerPool(ScannerSettings(ner="never", workers=1))
    try:
        await pool.warm_up()
        # Asked of the worker itself (the executor is the pool's; no public way in).
        frozen = await asyncio.wrap_future(pool._executor.submit(gc.get_freeze_count))
    finally:
        pool.close(graceful=False)
    assert frozen > 10_000
