"""Where the slow acceptances' time goes: serve's ``accept_timing`` debug lines (one per
accepted message: queue id, stage durations; see phigate/observability/timing.py) joined
with the load generator's latency of the same message.

``outside`` is the client's latency minus serve's own MAIL-to-250 total: the client's
MAIL before serve read it (the client's event loop, TLS on both sides, serve's event loop
busy) and the 250 on its way back.
"""

from __future__ import annotations

import contextlib
import re
import statistics
from datetime import datetime
from pathlib import Path

from load.generator import LoadResult

_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def read_timings(log: Path) -> dict[str, dict[str, float]]:
    """queue id -> {field: number} of every ``accept_timing`` line in ``log``."""
    found: dict[str, dict[str, float]] = {}
    for line in log.read_text(errors="replace").splitlines():
        if "event=accept_timing" not in line:
            continue
        fields = dict(_FIELD.findall(line))
        queue_id = fields.pop("id", None)
        if queue_id is None:
            continue
        numbers: dict[str, float] = {}
        stamp = fields.pop("ts", None)
        if stamp is not None:  # when serve sent the 250 (cpu_timeline.delivery_split)
            with contextlib.suppress(ValueError):
                numbers["ended_at"] = datetime.fromisoformat(stamp).timestamp()
        for key, value in fields.items():
            try:
                numbers[key] = float(value)
            except ValueError:
                continue
        found[queue_id] = numbers
    return found


def joined(load: LoadResult, timings: dict[str, dict[str, float]]
           ) -> list[dict[str, float]]:
    """One row per accepted message that has a timing line: its stages, ``latency_ms``
    (the client's) and ``outside_ms``."""
    rows = []
    for latency, queue_id in zip(load.latencies, load.queue_ids, strict=True):
        stages = timings.get(queue_id)
        if stages is None:
            continue
        row = dict(stages)
        row["latency_ms"] = latency * 1000
        row["outside_ms"] = row["latency_ms"] - stages.get("total_ms", 0.0)
        rows.append(row)
    return rows


#: Printed first, in the order of a transaction; anything else after them.
_ORDER = ["latency_ms", "outside_ms", "total_ms", "mail_ms", "client_ms", "loop_ms",
          "rcpt_queue_ms", "rcpt_run_ms", "rcpt_resume_ms", "data_read_ms",
          "checks_queue_ms", "checks_run_ms", "checks_resume_ms", "scan_ms",
          "scan_wait_ms", "scan_worker_ms", "scan_resume_ms",
          "store_queue_ms", "store_run_ms", "decide_ms", "commit_queued_ms",
          "commit_write_ms", "writer_turn_ms", "store_resume_ms", "gc_ms",
          "scans_in_flight", "commit_batch"]


def report_timings(rows: list[dict[str, float]], tails: tuple[float, ...] = (0.02, 0.01)
                   ) -> list[str]:
    """Per stage: the median over all messages, and the mean over the slowest ``tails``
    (by the client's latency)."""
    if not rows:
        return ["no accept_timing lines (serve not at debug level?)"]
    ordered = sorted(rows, key=lambda row: row["latency_ms"])
    slow = {tail: ordered[-max(1, round(len(ordered) * tail)):] for tail in tails}
    keys = [key for key in _ORDER if any(key in row for row in rows)]
    keys += sorted({key for row in rows for key in row} - set(keys) - {"ended_at"})
    header = f"{'stage':<20}{'median':>9}{'mean':>9}" + "".join(
        f"{f'slowest {tail:.0%}':>14}" for tail in tails)
    lines = [f"{len(rows)} messages with timings; ms (counts for the last rows)", header,
             "-" * len(header)]
    for key in keys:
        values = [row.get(key, 0.0) for row in rows]
        cells = "".join(
            f"{statistics.fmean(row.get(key, 0.0) for row in slow[tail]):>14.1f}"
            for tail in tails)
        lines.append(f"{key:<20}{statistics.median(values):>9.1f}"
                     f"{statistics.fmean(values):>9.1f}{cells}")
    return lines
