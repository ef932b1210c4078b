"""Where a scan's CPU goes, per message, on the relay benchmark's own messages (issue 16).

    .venv/bin/python bench/scan_accounting.py [-n 600] [--set relay|campaign] [--pool]

In one process, one ``Scanner`` as a worker builds it, the messages of
``bench/relay_vs_postfix.py`` (``load/messages.py``, the same seed: CRLF bytes, as DATA
hands them to the scanner) or the campaign's newsletters (``campaign_bench.py``, CRLF as
they arrive over SMTP) are scanned after a warm-up, and the CPU of each stage is summed
(``time.process_time`` around the stage's function; inclusive, so a stage's figure contains
what it calls): MIME parse and part decoding, HTML to text, the cheap pass and within it
the recognizers run on cache misses, the whole-text passes and the cache lookups, NER, the
overlap resolution and the verdict. The caches' hit rates come from their counters.

``--pool`` then scans the same messages through a ``ScannerPool`` (spawned workers, as
``serve`` runs them; two at a time over two workers) and reports the workers' CPU per
message (from /proc) against the in-process figure, and this process's CPU per message:
what the relay process pays for handing a message to the pool and taking the result back
(framing, pickling the result, the event loop's wake-ups); and the same two figures for
a task that does nothing, one or two handed over at a time: the trip's own cost, through a
bare ``ProcessPoolExecutor`` (what the pool was until issue 16) and through the pool with a
scanner that does nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import pickle
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load.messages import build_messages
from load.procstat import descendants, process_cpu_seconds, spawned_worker_cpu

from phigate.config import ScannerSettings
from phigate.phi_scanner import extract, nlp, scanner
from phigate.phi_scanner.scanner import Scanner

SPENT: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)


def timed(owner: Any, name: str, label: str) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            SPENT[label] += time.process_time() - start
            CALLS[label] += 1

    setattr(owner, name, wrapper)


def instrument() -> list[tuple[str, str]]:
    """(label, parent label) in report order."""
    timed(Scanner, "scan_message", "scan_message")
    timed(scanner, "extract_message", "extract_message")
    timed(extract, "html_to_text", "html_to_text")
    timed(scanner, "_distinct", "_distinct")
    timed(Scanner, "cheap_findings", "cheap pass")
    timed(Scanner, "_stages", "recognizers (cache misses)")
    timed(scanner, "speaker_lines", "speaker_lines")
    timed(scanner, "find_repeats", "find_repeats")
    timed(scanner, "cache_units", "cache_units")
    timed(scanner, "restore", "cache restore")
    timed(Scanner, "_ner_findings", "NER pass")
    timed(nlp, "name_candidate_chunks", "candidate chunks")
    timed(nlp.NerModel, "_chunk_entities", "spaCy (cache misses)")
    timed(scanner, "resolve_overlaps", "resolve_overlaps")
    timed(scanner, "judge", "judge")
    recognizers = _instrument_recognizers()
    return [("scan_message", ""), ("extract_message", "scan_message"),
            ("html_to_text", "extract_message"), ("_distinct", "scan_message"),
            ("cheap pass", "scan_message"), ("recognizers (cache misses)", "cheap pass"),
            ("speaker_lines", "cheap pass"), ("find_repeats", "cheap pass"),
            ("cache_units", "cheap pass"), ("cache restore", "cheap pass"),
            ("NER pass", "scan_message"), ("candidate chunks", "NER pass"),
            ("spaCy (cache misses)", "NER pass"), ("resolve_overlaps", "scan_message"),
            ("judge", "scan_message")] + [
        (name, "recognizers (cache misses)") for name in recognizers]


def _instrument_recognizers() -> list[str]:
    names, wrapped = [], []
    for index, recognizer in enumerate(scanner.PATTERN_RECOGNIZERS):
        name = getattr(recognizer, "__name__", f"pattern {index}")
        holder = _Holder(recognizer)
        timed(holder, "function", name)
        wrapped.append(holder.function)
        names.append(name)
    scanner.PATTERN_RECOGNIZERS = tuple(wrapped)
    for name in ("find_addresses", "find_dates", "find_cued_names", "find_lexicon_names",
                 "find_clinical_people", "find_facilities", "find_vocabulary_terms",
                 "find_health_patterns"):
        timed(scanner, name, name)
        names.append(name)
    return names


class _Holder:
    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function


def relay_messages(count: int) -> list[bytes]:
    built = build_messages(count, sender="reminders@practice.test",
                           recipient_domain="patients.example")
    return [raw for _, raw in built]


def campaign_set(count: int) -> list[bytes]:
    from campaign_bench import campaign_messages

    return [raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            for _, raw in campaign_messages(count)]


def plain(messages: list[bytes], warm: list[bytes], settings: ScannerSettings,
          pollute_mb: int = 0) -> float:
    """CPU ms per message, nothing instrumented. ``pollute_mb``: between two scans, write
    that much memory (not timed), as serve, the client and the sink do to the CPU caches
    when they run between a worker's scans on a shared machine."""
    one = Scanner(settings)
    for raw in warm:
        one.scan_message(raw)
    junk = bytearray(pollute_mb << 20)
    spent = 0.0
    for raw in messages:
        if pollute_mb:
            junk[::64] = bytes(len(junk[::64]))  # one write per cache line
        start = time.process_time()
        one.scan_message(raw)
        spent += time.process_time() - start
    return spent / len(messages) * 1000


def in_process(messages: list[bytes], warm: list[bytes], settings: ScannerSettings) -> None:
    order = instrument()
    one = Scanner(settings)
    for raw in warm:
        one.scan_message(raw)
    SPENT.clear()
    CALLS.clear()
    hits = _counters(one)
    verdicts: dict[str, int] = defaultdict(int)
    ner_runs = 0
    result_bytes = 0
    start = time.process_time()
    for raw in messages:
        before = CALLS["NER pass"]
        result = one.scan_message(raw)
        verdicts[result.verdict] += 1
        ner_runs += CALLS["NER pass"] > before
        result_bytes += len(pickle.dumps(result))
    total = time.process_time() - start
    count = len(messages)
    print(f"in process: {count} messages, {total / count * 1000:.2f} ms CPU per message "
          f"(instrumented; verdicts {dict(verdicts)}; NER ran for {ner_runs})")
    print(f"{'stage':<34}{'ms/msg':>8}{'share':>8}{'calls/msg':>11}")
    for label, parent in order:
        indent = "  " * _depth(label, dict(order))
        spent = SPENT[label] / count * 1000
        print(f"{indent + label:<34}{spent:>8.2f}{SPENT[label] / total:>8.1%}"
              f"{CALLS[label] / count:>11.1f}" + (f"   (in {parent})" if parent else ""))
    after = _counters(one)
    for name in after:
        got = after[name][0] - hits[name][0]
        missed = after[name][1] - hits[name][1]
        print(f"{name}: {got} hits, {missed} misses ({got / max(1, got + missed):.1%} hits)")
    print(f"pickled result: {result_bytes / count:.0f} bytes per message")


def _depth(label: str, parents: dict[str, str]) -> int:
    depth = 0
    while parents.get(label):
        label = parents[label]
        depth += 1
    return depth


def _counters(one: Scanner) -> dict[str, tuple[int, int]]:
    caches = {"paragraph cache": one._cache, "NER cache": one._ner_cache}
    return {name: (cache.hits, cache.misses) for name, cache in caches.items()
            if cache is not None}


async def through_pool(messages: list[bytes], warm: list[bytes], settings: ScannerSettings,
                       workers: int) -> tuple[float, float, float]:
    from phigate.phi_scanner.pool import ScannerPool

    pool = ScannerPool(replace(settings, workers=workers))
    try:
        await pool.warm_up()
        for raw in warm:
            await pool.scan(raw)
        me = process_cpu_seconds(_self_pid())
        children = sum(spawned_worker_cpu(_self_pid()).values())
        wall = time.perf_counter()
        queue = list(reversed(messages))

        async def one_lane() -> None:
            while queue:
                await pool.scan(queue.pop())

        await asyncio.gather(*(one_lane() for _ in range(workers)))
        wall = time.perf_counter() - wall
        mine = (process_cpu_seconds(_self_pid()) or 0.0) - (me or 0.0)
        theirs = sum(spawned_worker_cpu(_self_pid()).values()) - children
    finally:
        pool.close(graceful=False)
    count = len(messages)
    return theirs / count * 1000, mine / count * 1000, count / wall


def _length(raw: bytes) -> int:
    return len(raw)


async def round_trip(in_flight: int, count: int = 2000) -> tuple[float, float]:
    """CPU ms per task of a ProcessPoolExecutor worker and of this process, for a task that
    does nothing (``len`` of an 11 KB message), ``in_flight`` tasks handed over at a time:
    what a scan pays for the trip alone."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    executor = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    loop = asyncio.get_running_loop()
    raw = b"x" * 11_000
    try:
        for _ in range(20):
            await loop.run_in_executor(executor, _length, raw)
        lanes = asyncio.Semaphore(in_flight)

        async def one() -> None:
            async with lanes:
                await loop.run_in_executor(executor, _length, raw)

        me, children = process_cpu_seconds(_self_pid()) or 0.0, _all_children_cpu()
        await asyncio.gather(*(one() for _ in range(count)))
        mine = (process_cpu_seconds(_self_pid()) or 0.0) - me
        theirs = _all_children_cpu() - children
    finally:
        executor.shutdown()
    return theirs / count * 1000, mine / count * 1000


class _Nothing:
    """A worker's scanner that does nothing: the pool's trip alone."""

    def scan_message(self, raw: bytes) -> Any:
        from phigate.phi_scanner.findings import ScanResult

        return ScanResult("none", 0.0, [], [], [])


def _nothing(settings: ScannerSettings) -> _Nothing:
    return _Nothing()


async def pool_round_trip(in_flight: int, count: int = 2000) -> tuple[float, float]:
    """:func:`round_trip` through a ``ScannerPool`` of one worker whose scanner does
    nothing: what the pool itself costs a message, in the worker and in this process."""
    from phigate.phi_scanner.pool import ScannerPool

    pool = ScannerPool(ScannerSettings(workers=1), scanner_factory=_nothing)
    raw = b"x" * 11_000
    try:
        await pool.warm_up()
        for _ in range(20):
            await pool.scan(raw)
        lanes = asyncio.Semaphore(in_flight)

        async def one() -> None:
            async with lanes:
                await pool.scan(raw)

        me, children = process_cpu_seconds(_self_pid()) or 0.0, _all_children_cpu()
        await asyncio.gather(*(one() for _ in range(count)))
        mine = (process_cpu_seconds(_self_pid()) or 0.0) - me
        theirs = _all_children_cpu() - children
    finally:
        pool.close(graceful=False)
    return theirs / count * 1000, mine / count * 1000


def _all_children_cpu() -> float:
    return sum(process_cpu_seconds(pid) or 0.0 for pid in descendants(_self_pid()))


def _self_pid() -> int:
    import os

    return os.getpid()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--messages", type=int, default=600)
    parser.add_argument("--set", choices=["relay", "campaign"], default="relay")
    parser.add_argument("--pool", action="store_true", help="also through a ScannerPool")
    parser.add_argument("--no-cache", action="store_true", help="cache_paragraphs = 0")
    parser.add_argument("--pollute", type=int, default=0, metavar="MB",
                        help="also time the scans with MB of memory written between two")
    args = parser.parse_args()
    make: Callable[[int], list[bytes]] = relay_messages if args.set == "relay" else campaign_set
    everything = make(args.messages + 20)
    warm, messages = everything[:20], everything[20:]
    settings = ScannerSettings()
    if args.no_cache:
        settings = replace(settings, cache_paragraphs=0)
    alone = plain(messages, warm, settings)
    print(f"in process, not instrumented: {alone:.2f} ms CPU per message")
    if args.pollute:
        polluted = plain(messages, warm, settings, args.pollute)
        print(f"in process, {args.pollute} MB written between scans: {polluted:.2f} ms CPU "
              f"per message")
    in_process(messages, warm, settings)
    if args.pool:
        for workers in (1, 2):
            worker_ms, parent_ms, rate = asyncio.run(
                through_pool(messages, warm, settings, workers))
            print(f"pool of {workers}: workers {worker_ms:.2f} ms CPU per message "
                  f"(in process: {alone:.2f}), this process "
                  f"{parent_ms:.2f} ms per message, {rate:.1f} msg/s")
        for in_flight in (1, 2):
            worker_ms, parent_ms = asyncio.run(round_trip(in_flight))
            print(f"round trip of an empty task, {in_flight} in flight: worker {worker_ms:.2f} "
                  f"ms CPU, this process {parent_ms:.2f} ms CPU per task")
        for in_flight in (1, 2):
            worker_ms, parent_ms = asyncio.run(pool_round_trip(in_flight))
            print(f"ScannerPool, a scanner that does nothing, {in_flight} in flight: worker "
                  f"{worker_ms:.2f} ms CPU, this process {parent_ms:.2f} ms CPU per message")


if __name__ == "__main__":
    main()
