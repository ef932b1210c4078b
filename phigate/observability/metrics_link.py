"""The parent's live pull of its delivery child's metrics, over one socketpair.

The parent holds one end, the child the other (passed as an inherited descriptor). At
scrape time the parent sends a request number (8 bytes); the child answers with that
number, a length and its exposition (``generate_latest`` of its registry). A reply that
arrives after its request timed out is recognised by its number and dropped at the next
scrape, so a slow child never shifts the stream. Both ends are plain blocking sockets used
from threads: the parent's scrape already runs off the event loop, and the child answers
on a daemon thread of its own, whatever its event loop is doing.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

_REQUEST = struct.Struct(">Q")
_REPLY = struct.Struct(">QQ")
#: A reply larger than this is not an exposition of ours: the link is dropped.
MAX_REPLY_BYTES = 64 * 1024 * 1024
#: How long a scrape waits for the child before serving the parent's metrics alone.
FETCH_TIMEOUT_SECONDS = 2.0


class MetricsLink:
    """The parent's end: :meth:`fetch` the child's exposition, or None in time."""

    def __init__(self, timeout: float = FETCH_TIMEOUT_SECONDS) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._sequence = 0

    def attach(self, sock: socket.socket | None) -> None:
        """Use ``sock`` from now on (a restarted child's), closing the previous one."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
            self._sock = sock
            self._buffer.clear()

    def fetch(self) -> bytes | None:
        """The child's exposition; None (or b"" if it failed to render) when missing."""
        with self._lock:
            if self._sock is None:
                return None
            self._sequence += 1
            try:
                return self._exchange(self._sock, self._sequence)
            except (OSError, ValueError) as error:
                log.warning("child metrics unavailable error=%s", type(error).__name__)
                return None

    def _exchange(self, sock: socket.socket, sequence: int) -> bytes | None:
        deadline = time.monotonic() + self.timeout
        sock.settimeout(self.timeout)
        sock.sendall(_REQUEST.pack(sequence))
        while True:
            reply = self._next_reply()
            if reply is not None:
                number, body = reply
                if number == sequence:
                    return body
                continue  # the late answer to a request that timed out
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            sock.settimeout(left)
            try:
                chunk = sock.recv(1 << 16)
            except TimeoutError:
                return None  # what arrived stays buffered for the next scrape
            if not chunk:
                raise ConnectionResetError("the child closed its end")
            self._buffer += chunk

    def _next_reply(self) -> tuple[int, bytes] | None:
        if len(self._buffer) < _REPLY.size:
            return None
        number, length = _REPLY.unpack_from(self._buffer)
        if length > MAX_REPLY_BYTES:
            raise ValueError("reply too large")
        end = _REPLY.size + length
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[_REPLY.size:end])
        del self._buffer[:end]
        return number, body


def serve_metrics(sock: socket.socket, render: Callable[[], bytes]) -> threading.Thread:
    """The child's end: answer every request on ``sock`` with ``render()``, on a daemon
    thread, until the parent closes its end."""
    thread = threading.Thread(target=_answer, args=(sock, render),
                              name="phigate-metrics-link", daemon=True)
    thread.start()
    return thread


def _answer(sock: socket.socket, render: Callable[[], bytes]) -> None:
    sock.settimeout(None)
    with sock:
        while True:
            try:
                request = _read_exactly(sock, _REQUEST.size)
                if request is None:
                    return  # the parent is gone or restarting us
                (number,) = _REQUEST.unpack(request)
                try:
                    body = render()
                except Exception as error:  # an empty answer: "missing", not a hang
                    log.warning("metrics render failed error=%s", type(error).__name__)
                    body = b""
                sock.sendall(_REPLY.pack(number, len(body)) + body)
            except OSError:
                return


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
