"""SQLite writers take turns across processes (serve's delivery child and submission)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from phigate.queue.db import make_engine, writer_turn

HOLDER = textwrap.dedent("""
    import sys
    from phigate.queue.db import make_engine, writer_turn
    engine = make_engine(sys.argv[1])
    with writer_turn(engine):
        print("holding", flush=True)
        sys.stdin.read()  # until the test closes our stdin
    print("released", flush=True)
""")


def _try_lock(lock_file: Path) -> bool:
    descriptor = os.open(lock_file, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)  # closing drops a lock we took
    return True


def test_a_writer_in_another_process_waits_for_the_turn(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    lock_file = tmp_path / "queue.db-writers"
    with subprocess.Popen([sys.executable, "-c", HOLDER, url], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
                          ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        try:
            assert holder.stdout.readline() == "holding\n"
            assert lock_file.stat().st_mode & 0o777 == 0o600
            assert not _try_lock(lock_file)
            engine = make_engine(url)
            entered = threading.Event()

            def write() -> None:
                with writer_turn(engine):
                    entered.set()

            writer = threading.Thread(target=write)
            writer.start()
            assert not entered.wait(0.5)  # the other process still has the turn
            holder.stdin.close()
            assert holder.stdout.readline() == "released\n"
            assert entered.wait(10)
            writer.join(10)
            assert _try_lock(lock_file)  # and we gave it back
            engine.dispose()
        finally:
            if holder.poll() is None:
                holder.kill()


def test_the_turn_is_reentrant_in_one_thread_and_exclusive_between_threads(
        tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'queue.db'}")
    turn = writer_turn(engine)
    other_entered = threading.Event()
    with turn:
        with turn:  # a write path that calls another one
            pass
        assert not _try_lock(tmp_path / "queue.db-writers")  # still held: outer level

        def other_thread() -> None:
            with turn:
                other_entered.set()

        thread = threading.Thread(target=other_thread)
        thread.start()
        assert not other_entered.wait(0.3)
    assert other_entered.wait(10)
    thread.join(10)
    assert _try_lock(tmp_path / "queue.db-writers")
    engine.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_a_database_without_a_file_needs_no_lock_file(url: str) -> None:
    engine = make_engine(url)
    with writer_turn(engine):
        pass
    engine.dispose()
