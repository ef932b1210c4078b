"""Loopback ports for test servers.

A port the OS picks with ``bind(0)`` comes from the ephemeral range, the same range every
outgoing connection of the suite draws its source port from. Between the pick and the
server's own bind, a client connection elsewhere in the run can take it (CI once failed on
exactly that: "address already in use" for a port picked a moment before). So ports are
handed out from below the ephemeral range, where the kernel never assigns one by itself,
and never twice in one process.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000  # clear of the well-known and registered services tests might meet
_handed_out: set[tuple[int, int]] = set()


def _ephemeral_start() -> int:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1, outside the ephemeral range, that was free a moment ago."""
    highest = _ephemeral_start() - 1
    if highest - _LOWEST < 1_000:  # an unusual range: fall back to the OS's pick
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    for _ in range(1_000):
        port = random.randint(_LOWEST, highest)
        if (kind, port) in _handed_out:
            continue
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add((kind, port))
        return port
    raise RuntimeError("no free loopback port below the ephemeral range")
