"""Scanner workers (and any child using phigate.lifeline) end when their parent is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers.processes import alive

PARENT = textwrap.dedent("""
    import multiprocessing, os, sys, time

    def child(parent_pid, use_prctl):
        if not use_prctl:
            sys.platform = "other"  # only the watcher thread
        from phigate.lifeline import exit_with_parent
        exit_with_parent(parent_pid, interval=0.2)
        time.sleep(120)

    if __name__ == "__main__":
        context = multiprocessing.get_context("spawn")
        process = context.Process(target=child, args=(os.getpid(), sys.argv[1] == "prctl"))
        process.start()
        print(process.pid, flush=True)
        time.sleep(120)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("mechanism", ["prctl", "watcher"])
def test_a_child_ends_within_seconds_of_a_sigkill_of_its_parent(
    tmp_path: Path, mechanism: str
) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    with subprocess.Popen([sys.executable, str(script), mechanism],
                          stdout=subprocess.PIPE, text=True) as parent:
        try:
            assert parent.stdout is not None
            child_pid = int(parent.stdout.readline())
            time.sleep(1.0)  # let the child set itself up
            assert alive(child_pid)
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait(5)
            deadline = time.monotonic() + 5
            while alive(child_pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not alive(child_pid), "orphan child still running"
        finally:
            parent.kill()


POOL_PARENT = textwrap.dedent("""
    import asyncio, time
    from phigate.config import ScannerSettings
    from phigate.phi_scanner import ScannerPool

    async def main():
        pool = ScannerPool(ScannerSettings(workers=1, ner="never"))
        await pool.warm_up()
        print(" ".join(str(pid) for pid in pool.worker_pids()), flush=True)
        time.sleep(120)

    if __name__ == "__main__":
        asyncio.run(main())
""")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_scanner_workers_end_when_serve_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "pool_parent.py"
    script.write_text(POOL_PARENT)
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                          text=True) as parent:
        try:
            assert parent.stdout is not None
            workers = [int(pid) for pid in parent.stdout.readline().split()]
            assert workers and all(alive(pid) for pid in workers)
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait(5)
            deadline = time.monotonic() + 5
            while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not any(alive(pid) for pid in workers), "orphan scanner worker"
        finally:
            parent.kill()
