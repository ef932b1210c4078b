"""Who had the cores while the load ran: the relay's CPU per role, sampled every 100 ms,
and the acceptances that ended while its delivery was busy against those while it was idle.

``relay_vs_postfix.py --timings`` prints it beside the stage table: it is how the bursts of
the delivery child were found (issue 16, bench/RESULTS.md): with delivery woken only by its
1 s poll, it claimed a second's mail at once and took the cores from the scanner workers
while it sent it, and the slowest acceptances of a run all ended inside those bursts.
"""

from __future__ import annotations

import statistics
import threading
import time

from load.procstat import tree_cpu_by_role

#: A 100 ms bin in which the delivery child used more than this many cores is "busy".
BUSY_CORES = 0.3
#: ... and less than this, "idle".
IDLE_CORES = 0.1
DELIVERY = "delivery child"


class CpuTimeline(threading.Thread):
    """Samples ``tree_cpu_by_role(root)`` every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, root: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        #: (wall-clock time, CPU seconds so far per role)
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append((time.time(), tree_cpu_by_role(self.root)))
            if self._stop_event.wait(self.interval):
                return

    def stop(self) -> list[tuple[float, dict[str, float]]]:
        self._stop_event.set()
        self.join()
        return self.samples


def cores_per_bin(samples: list[tuple[float, dict[str, float]]]
                  ) -> list[tuple[float, float, dict[str, float]]]:
    """(start, end, cores used per role) between consecutive samples."""
    bins = []
    for (began, before), (ended, after) in zip(samples, samples[1:], strict=False):
        seconds = ended - began
        if seconds > 0:
            bins.append((began, ended, {role: (after[role] - before.get(role, 0.0)) / seconds
                                        for role in after}))
    return bins


def delivery_split(samples: list[tuple[float, dict[str, float]]],
                   rows: list[dict[str, float]]) -> list[str]:
    """Acceptances (``rows`` with ``ended_at`` and ``latency_ms``) that ended in bins where
    delivery was busy, against those where it was idle: cores per role, latency."""
    bins = cores_per_bin(samples)
    if not bins or not rows:
        return ["no samples or no timed acceptances"]
    ordered = sorted(rows, key=lambda row: row["latency_ms"])
    slowest = {id(row) for row in ordered[-max(1, len(ordered) // 100):]}
    lines = [f"{'delivery':<10}{'bins':>6}" + "".join(
        f"{role[:9]:>10}" for role in ("scanner workers", "serve", DELIVERY)) +
        f"{'accepted':>10}{'p50 ms':>8}{'p99 ms':>8}{'of slowest 1%':>15}"]
    for label, chosen in (("busy", lambda cores: cores.get(DELIVERY, 0.0) > BUSY_CORES),
                          ("idle", lambda cores: cores.get(DELIVERY, 0.0) < IDLE_CORES)):
        picked = [(began, ended, cores) for began, ended, cores in bins if chosen(cores)]
        inside = [row for row in rows
                  if any(began <= row["ended_at"] < ended for began, ended, _ in picked)]
        if not picked or not inside:
            lines.append(f"{label:<10}{len(picked):>6}  (no acceptance ended in them)")
            continue
        latencies = sorted(row["latency_ms"] for row in inside)
        mean = [statistics.fmean(cores.get(role, 0.0) for _, _, cores in picked)
                for role in ("scanner workers", "serve", DELIVERY)]
        lines.append(f"{label:<10}{len(picked):>6}" + "".join(f"{value:>10.2f}" for value in mean)
                     + f"{len(inside):>10}{statistics.median(latencies):>8.0f}"
                     f"{latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]:>8.0f}"
                     f"{sum(id(row) in slowest for row in inside):>15}")
    return lines
