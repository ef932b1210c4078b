"""Stand-in scanners for the scanner pool's workers: they misbehave on request.

A worker built with :func:`scripted` reads the first line of each message as a command:

- ``hang DIR``: write ``DIR/<pid>`` (so the test knows which worker has it), then never answer;
- ``nap DIR``: write ``DIR/<pid>``, then answer half a second later;
- ``crash``: die at once (SIGKILL);
- ``garble HEX``: write those bytes to the relay as if they were a reply, then hang;
- ``findings N``: answer with N findings (a reply larger than a socket's buffer);
- ``frozen``: answer ``none`` with a note ``frozen=<gc.get_freeze_count()>`` of this worker;
- anything else: answer ``none`` with a note of the message's size, digest and this worker.

With ``PHIGATE_TEST_STARTED`` set (inherited by the spawned workers), each worker takes a
while to build its scanner and then writes ``<that dir>/built-<pid>``.
"""

from __future__ import annotations

import gc
import hashlib
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from phigate.phi_scanner.findings import Finding, ScanResult

if TYPE_CHECKING:
    from phigate.config import ScannerSettings

STARTED_DIR = "PHIGATE_TEST_STARTED"


def describe(raw: bytes, seen: int, pid: int) -> str:
    """The note an echo answer carries (also what a test expects of its message)."""
    return f"bytes={len(raw)} sha256={hashlib.sha256(raw).hexdigest()} seen={seen} pid={pid}"


def echo_note(raw: bytes) -> str:
    """The part of :func:`describe` that depends on the message only."""
    return f"bytes={len(raw)} sha256={hashlib.sha256(raw).hexdigest()}"


class ScriptedScanner:
    def __init__(self) -> None:
        self.seen = 0

    def scan_message(self, raw: bytes) -> ScanResult:
        self.seen += 1
        command, _, argument = raw.partition(b"\n")[0].partition(b" ")
        if command == b"hang":
            (Path(argument.decode()) / str(os.getpid())).touch()
            time.sleep(3600)
        if command == b"nap":
            (Path(argument.decode()) / str(os.getpid())).touch()
            time.sleep(0.5)
        if command == b"crash":
            os.kill(os.getpid(), signal.SIGKILL)
        if command == b"garble":
            from phigate.phi_scanner import pool_worker as pool

            assert pool._worker_channel is not None
            pool._worker_channel.sendall(bytes.fromhex(argument.decode()))
            time.sleep(3600)
        if command == b"findings":
            findings = [Finding("URL", f"https://portal.example/{n:06d}" + "x" * 80, n, n + 1,
                                "body", 0.9, "pattern") for n in range(int(argument))]
            return ScanResult("identifiers", 0.5, ["URL"], findings, [])
        if command == b"frozen":
            return ScanResult("none", 0.0, [], [], [f"frozen={gc.get_freeze_count()}"])
        return ScanResult("none", 0.0, [], [], [describe(raw, self.seen, os.getpid())])


def scripted(settings: ScannerSettings) -> ScriptedScanner:
    marks = os.environ.get(STARTED_DIR)
    if marks:
        time.sleep(0.5)  # a model to load
        (Path(marks) / f"built-{os.getpid()}").touch()
    return ScriptedScanner()


def cannot_start(settings: ScannerSettings) -> ScriptedScanner:
    raise RuntimeError("the model does not load")
