"""Child processes that end when their parent does.

A scanner worker holds a few hundred MB (the NLP model). If ``serve`` is killed with
SIGKILL, nothing in the parent runs to stop its workers, and they would live on as orphans.
Two mechanisms, because neither covers every case alone:

- ``PR_SET_PDEATHSIG`` (Linux): the kernel sends SIGKILL when the parent goes, even to a
  worker stuck in a C extension that never gives the interpreter back. The kernel ties it
  to the *thread* that started the child; phigate starts its pool from the event loop's
  thread, which lives as long as the process.
- A watcher thread that compares ``os.getppid()`` with the parent's pid once a second: on
  other systems, and for a parent that died before ``prctl`` took effect.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger("phigate.lifeline")

_PR_SET_PDEATHSIG = 1
WATCH_INTERVAL_SECONDS = 1.0


def exit_with_parent(parent_pid: int, *, interval: float = WATCH_INTERVAL_SECONDS) -> None:
    """Make this process end (exit status 1, or SIGKILL) as soon as ``parent_pid`` is gone."""
    if sys.platform.startswith("linux"):
        _set_parent_death_signal()
    if os.getppid() != parent_pid:
        os._exit(1)  # the parent died while we started
    watcher = threading.Thread(target=_watch, args=(parent_pid, interval),
                               name="phigate-parent-watch", daemon=True)
    watcher.start()


def _set_parent_death_signal() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            # e.g. a seccomp filter refusing prctl: the watcher thread still works.
            log.debug("prctl(PR_SET_PDEATHSIG) failed errno=%s", ctypes.get_errno())
    except (OSError, AttributeError):
        log.debug("prctl unavailable")


def _watch(parent_pid: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent_pid:
            os._exit(1)


def exit_hard_after(seconds: float, *, status: int = 1) -> threading.Timer:
    """A backstop for shutdown: end the process after ``seconds`` whatever it is doing.

    A worker thread busy in Python code (a pathological parse, a hung driver call) cannot
    be interrupted, and the interpreter's exit waits for the thread pool's threads: without
    this, SIGTERM could leave ``serve`` running until SIGKILL. Leases not released here
    are taken back at the next start (see the delivery scheduler).
    """
    timer = threading.Timer(seconds, _hard_exit, args=(status, seconds))
    timer.daemon = True
    timer.start()
    return timer


def _hard_exit(status: int, seconds: float) -> None:
    log.error("shutdown_forced after_seconds=%s", seconds)
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # noqa: S110 - exiting anyway
            pass
    os._exit(status)
