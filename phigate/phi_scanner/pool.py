"""A process pool of scanners, so scanning never blocks the relay's event loop.

Each worker builds one :class:`Scanner` (model and vocabularies) when it starts. A scan that
exceeds ``timeout_seconds`` or crashes its worker gives an ``unscannable`` result with
verdict ``phi`` (fail closed) and never an exception. A stuck worker cannot be interrupted
inside a C extension, so on a timeout the whole pool is replaced and its processes killed;
scans that were in flight on the old pool are retried once on the new one.

The timeout is the time a worker spends on the message, not the time it waited for a free
worker: at most one scan per worker is handed to the executor, the others wait here. Under
load a queue of messages would otherwise run out their clocks in the executor's queue and
get whole pools killed for being slow behind each other.

A result comes back without its findings unless asked for (``with_findings``): the relay
decides on the verdict, score, categories and notes, and the findings, with their text,
were most of what crossed the pipe and what the relay process spent unpickling.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

from phigate.phi_scanner.findings import ScanResult

if TYPE_CHECKING:
    from phigate.config import ScannerSettings
    from phigate.phi_scanner.scanner import Scanner

logger = logging.getLogger(__name__)

_worker_scanner: Scanner | None = None


def _init_worker(settings: ScannerSettings, parent_pid: int) -> None:
    global _worker_scanner
    from phigate.heap import freeze_start_up_heap
    from phigate.lifeline import exit_with_parent
    from phigate.phi_scanner.scanner import Scanner

    exit_with_parent(parent_pid)  # no orphan worker after a SIGKILL of serve
    _worker_scanner = Scanner(settings)
    # The model and vocabularies out of every full collection (~200 ms each otherwise).
    freeze_start_up_heap()


def _scan_in_worker(raw: bytes, with_findings: bool) -> ScanResult:
    assert _worker_scanner is not None  # noqa: S101 - set by the pool initializer
    try:
        result = _worker_scanner.scan_message(raw)
        return result if with_findings else result.without_findings()
    except Exception as error:
        return ScanResult.unscannable_result(f"scanner error ({type(error).__name__})")


class ScannerPool:
    """Started once; ``workers = 0`` means one process per core."""

    def __init__(self, settings: ScannerSettings) -> None:
        self.settings = settings
        self.size = settings.workers or os.cpu_count() or 1
        # spawn, not fork: the relay process runs an event loop and threads.
        self._context = multiprocessing.get_context("spawn")
        self._generation = 0
        self._executor = self._new_executor()
        self._closed = False
        # One scan per worker in the executor: its clock starts when a worker is free.
        self._free_workers = asyncio.Semaphore(self.size)

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.size, mp_context=self._context,
                                   initializer=_init_worker, initargs=(self.settings, os.getpid()))

    async def warm_up(self) -> None:
        """Start the workers and load the model now rather than on the first message."""
        await asyncio.gather(*(self.scan(b"Subject: warm-up\r\n\r\nwarm-up\r\n")
                               for _ in range(self.size)))

    async def scan(self, raw: bytes, *, with_findings: bool = False) -> ScanResult:
        """``raw``'s scan result; its findings only ``with_findings`` (see the module)."""
        if self._closed:
            return ScanResult.unscannable_result("scanner pool closed")
        for attempt in (1, 2):
            generation, executor = self._generation, self._executor
            loop = asyncio.get_running_loop()
            try:
                async with self._free_workers:
                    if generation != self._generation:  # replaced while we waited
                        generation, executor = self._generation, self._executor
                    future = loop.run_in_executor(executor, _scan_in_worker, raw,
                                                  with_findings)
                    # Model loading in a fresh worker counts against the first scan's
                    # timeout, so the first attempt gets room for it.
                    return await asyncio.wait_for(future, self.settings.timeout_seconds)
            except TimeoutError:
                logger.warning("scan timed out seconds=%s", self.settings.timeout_seconds)
                self._restart(generation)
                return ScanResult.unscannable_result("scan time limit exceeded")
            except BrokenProcessPool:
                restarted_by_other = generation != self._generation
                self._restart(generation)
                if restarted_by_other and attempt == 1:
                    continue  # our worker was killed because of another message: retry
                logger.warning("scanner worker crashed")
                return ScanResult.unscannable_result("scanner worker crashed")
            except Exception as error:
                logger.warning("scan failed error=%s", type(error).__name__)
                return ScanResult.unscannable_result(f"scanner error ({type(error).__name__})")
        return ScanResult.unscannable_result("scanner worker crashed")  # pragma: no cover

    def _restart(self, generation: int) -> None:
        if generation != self._generation or self._closed:
            return  # someone already replaced that executor
        old = self._executor
        self._generation += 1
        self._executor = self._new_executor()
        _kill_executor(old)

    def close(self, *, graceful: bool = True) -> None:
        """Stop the workers: let each exit by itself (a few seconds each, to unload the
        model), or, not ``graceful``, kill them at once."""
        self._closed = True
        _kill_executor(self._executor, graceful=graceful)


def _kill_executor(executor: ProcessPoolExecutor, *, graceful: bool = False) -> None:
    # ProcessPoolExecutor offers no way to stop a busy worker; its process table is private
    # but stable across CPython 3.8-3.13, and killing is the only way out of a stuck parse.
    processes = list((getattr(executor, "_processes", None) or {}).values())  # None once shut down
    if not graceful:
        for process in processes:
            if process.is_alive():
                process.kill()
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(timeout=5 if graceful else 1)
        if process.is_alive():
            process.kill()
