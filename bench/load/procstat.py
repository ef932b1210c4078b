"""CPU time and memory of a process tree, from /proc (Linux)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; it is in parentheses.
    return text[text.rindex(")") + 2:].split()


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def process_cpu_seconds(pid: int) -> float | None:
    """User+system CPU of one process so far (None: it is gone)."""
    fields = _stat(pid)
    if fields is None:
        return None
    return sum(int(value) for value in fields[11:13]) / CLOCK_TICKS


def spawned_worker_cpu(root: int) -> dict[int, float]:
    """CPU seconds so far of each multiprocessing worker under ``root`` (the scanner pool's
    spawned children; not the resource tracker, nor serve's delivery child)."""
    cpu = {}
    for pid in descendants(root):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        seconds = process_cpu_seconds(pid)
        if b"spawn_main" in command and seconds is not None:
            cpu[pid] = seconds
    return cpu


def tree_cpu_by_role(root: int) -> dict[str, float]:
    """CPU seconds so far of ``root``'s tree, split into serve (``root``), its delivery child
    (started with ``--supervised-by``), the scanner pool's spawned workers and the rest;
    reaped children count for their parent's role."""
    cpu: dict[str, float] = {}
    for pid in descendants(root):
        fields = _stat(pid)
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if fields is None:
            continue
        role = ("serve" if pid == root else "scanner workers" if b"spawn_main" in command
                else "delivery child" if b"--supervised-by" in command else "other")
        cpu[role] = cpu.get(role, 0.0) + sum(int(value) for value in fields[11:15]) / CLOCK_TICKS
    return cpu


def tree_cpu_seconds(root: int) -> float:
    """User+system CPU of ``root`` and its live descendants, plus children they reaped
    (cutime/cstime): what the whole service used so far."""
    total = 0
    for pid in descendants(root):
        fields = _stat(pid)
        if fields is not None:
            # utime, stime, cutime, cstime are fields 14-17 (index 11-14 after the name).
            total += sum(int(value) for value in fields[11:15])
    return total / CLOCK_TICKS


def tree_rss_bytes(root: int) -> int:
    """Summed PSS of the tree: shared pages (libraries, a forked parent's memory) are split
    between the processes sharing them, so twenty Postfix daemons are not counted as twenty
    copies of libc."""
    total = 0
    for pid in descendants(root):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


class PeakRss(threading.Thread):
    """Samples the summed PSS of a process tree every ``interval`` seconds."""

    def __init__(self, root: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.root, self.interval, self.peak = root, interval, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.peak = max(self.peak, tree_rss_bytes(self.root))

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return max(self.peak, tree_rss_bytes(self.root))
