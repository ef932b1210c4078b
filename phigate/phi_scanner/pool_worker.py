"""A scanner pool worker's side (build the scanner, say READY, answer one framed request
after another), the frames and channel helpers both sides use, and the records the relay
keeps of each worker; the pool itself and the protocol are described in :mod:`.pool`."""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from phigate.phi_scanner.findings import ScanResult

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from phigate.config import ScannerSettings

#: Relay to worker: the message's length, FLAG_FINDINGS or 0; then the message.
_REQUEST = struct.Struct("!IB")
#: Worker to relay: the payload's length, its kind (READY or RESULT); then the payload.
_REPLY = struct.Struct("!IB")
FLAG_FINDINGS = 1
READY = 1
RESULT = 2
#: A request's length is a u32: a message beyond it (far beyond any size limit) is not sent.
MAX_MESSAGE_BYTES = 2**32 - 1
#: A reply announcing more than this is garbage, not a result (findings of a message whose
#: text is capped at a few MB stay far below it).
MAX_REPLY_BYTES = 256 << 20
WARM_UP_MESSAGE = b"Subject: warm-up\r\n\r\nwarm-up\r\n"


class MessageScanner(Protocol):
    """What a worker runs: :class:`Scanner`, or a stand-in a test gives the pool."""

    def scan_message(self, raw: bytes) -> ScanResult: ...


#: Builds a worker's scanner from the settings; must be picklable (a module-level function).
ScannerFactory = Callable[["ScannerSettings"], MessageScanner]


def build_scanner(settings: ScannerSettings) -> MessageScanner:
    from phigate.phi_scanner.scanner import Scanner

    return Scanner(settings)


# --- the worker process -------------------------------------------------------------------

#: The worker's end of its socket pair (a test's stand-in scanner may write garbage to it).
_worker_channel: socket.socket | None = None


def _worker_main(channel: socket.socket, settings: ScannerSettings, parent_pid: int,
                 factory: ScannerFactory) -> None:
    """A worker's life: start, say READY, then answer one request after another until the
    relay closes its end (or dies: then the lifeline ends us too)."""
    global _worker_channel
    from phigate.heap import freeze_start_up_heap
    from phigate.lifeline import exit_with_parent

    exit_with_parent(parent_pid)  # no orphan worker after a SIGKILL of serve
    _worker_channel = channel
    scanner = factory(settings)
    _scan_in_worker(scanner, WARM_UP_MESSAGE, False)
    # The model and vocabularies out of every later full collection (~200 ms each otherwise).
    freeze_start_up_heap()
    channel.sendall(_REPLY.pack(0, READY))
    with channel.makefile("rb") as requests:
        while True:
            header = requests.read(_REQUEST.size)
            if len(header) < _REQUEST.size:
                return  # the relay closed the pool
            length, flags = _REQUEST.unpack(header)
            raw = requests.read(length)
            if len(raw) < length:
                return
            result = _scan_in_worker(scanner, raw, bool(flags & FLAG_FINDINGS))
            payload = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
            try:
                channel.sendall(_REPLY.pack(len(payload), RESULT) + payload)
            except OSError:
                return  # the relay closed the pool while we scanned: nobody to tell


def _scan_in_worker(scanner: MessageScanner, raw: bytes, with_findings: bool) -> ScanResult:
    # (The benches' profiles tell a worker's scanning from its waiting by this frame.)
    try:
        result = scanner.scan_message(raw)
        return result if with_findings else result.without_findings()
    except Exception as error:
        return ScanResult.unscannable_result(f"scanner error ({type(error).__name__})")


# --- the relay's records of a worker and its job -----------------------------------------

@dataclass(eq=False)
class _Job:
    raw: bytes
    with_findings: bool
    result: asyncio.Future[ScanResult]


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    channel: socket.socket
    #: Resolved True once it said READY, False if it ended before.
    started: asyncio.Future[bool]
    state: str = "starting"  # starting | idle | busy | gone
    job: _Job | None = None
    #: The start-up's or the current job's time limit.
    deadline: asyncio.TimerHandle | None = None
    received: bytearray = field(default_factory=bytearray)
    #: What the socket did not take yet of the current request.
    unsent: memoryview | None = None


def _decode(payload: bytes) -> ScanResult | None:
    """The worker's result, or None if the payload is not one."""
    try:
        result = pickle.loads(payload)  # noqa: S301 - from our own worker process
    except Exception:
        return None
    return result if isinstance(result, ScanResult) else None


def _shut(channel: socket.socket) -> None:
    try:
        channel.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _kill(process: BaseProcess) -> None:
    if process.is_alive():
        process.kill()
