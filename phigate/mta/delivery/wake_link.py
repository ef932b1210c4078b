"""``serve`` telling its delivery child that new mail is queued, over one socketpair.

The parent (:class:`WakeSender`) sends one byte per commit that queued mail; the child
(:func:`listen_for_wakes`) reads whatever arrived and wakes its claim loop once. A byte
that does not fit (the child is busy and has not read the last ones) is dropped: the
unread bytes already wake it. The parent's end is replaced when a restarted child gets a
new pair; until then, and while no child runs, wakes go nowhere and the child's first
claim, at start, finds what was queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable

#: Bytes read at once: any number of wakes since the last read is one wake-up.
_DRAIN_BYTES = 4096


class WakeSender:
    """The parent's end. :meth:`wake` is called from the threads that commit mail."""

    def __init__(self) -> None:
        # Held while sending and while replacing the socket: a send never reaches a
        # descriptor that was closed and reused meanwhile.
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None

    def attach(self, sock: socket.socket | None) -> None:
        """Use ``sock`` from now on (a restarted child's), closing the previous one."""
        if sock is not None:
            sock.setblocking(False)
        with self._lock:
            if self._sock is not None:
                self._sock.close()
            self._sock = sock

    def wake(self) -> None:
        with self._lock:
            if self._sock is None:
                return
            # BlockingIOError: unread wakes are waiting already; other OSErrors: the child
            # is gone (its supervisor restarts it, and a new child claims at start).
            with contextlib.suppress(OSError):
                self._sock.send(b"\x01")


def listen_for_wakes(sock: socket.socket, wake: Callable[[], None]) -> Callable[[], None]:
    """Call ``wake`` on the running event loop each time bytes arrive on ``sock``; returns
    the function that stops listening (and closes ``sock``)."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)

    def readable() -> None:
        try:
            data = sock.recv(_DRAIN_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the parent is gone: the lifeline ends this process
            stop()
            return
        wake()

    def stop() -> None:
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(sock.fileno())
        sock.close()

    loop.add_reader(sock.fileno(), readable)
    return stop
