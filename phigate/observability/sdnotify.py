"""A tiny, dependency-free client for systemd's notification protocol (sd_notify(3)).

``phigate serve`` runs under ``Type=notify``: it sends ``READY=1`` only once its listeners
are bound, ``WATCHDOG=1`` at half the interval systemd asked for, ``STOPPING=1`` when it
starts draining, and ``STATUS=...`` lines that ``systemctl status`` shows.

Outside systemd (``NOTIFY_SOCKET`` unset) every call is a no-op that returns ``False``, so
callers never need to check where they run. Sending never raises: a failed notification
must not take the relay down (systemd notices a missing ``READY``/``WATCHDOG`` by itself).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def notify(state: str, *, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (``KEY=VALUE`` lines) to ``$NOTIFY_SOCKET``; True when it was sent."""
    env = os.environ if environ is None else environ
    address = _socket_address(env.get("NOTIFY_SOCKET", ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError as error:
        # The state names are ours, never message content, so they are safe to log.
        log.warning("sd_notify failed state=%s error=%s", state.split("=", 1)[0], error.strerror)
        return False
    return True


def notify_ready(status: str | None = None) -> bool:
    """Tell systemd the service is up (call after every listener is bound)."""
    return notify("READY=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))


def notify_watchdog() -> bool:
    """Reset the watchdog timer; call every :func:`watchdog_interval` seconds."""
    return notify("WATCHDOG=1")


def notify_stopping(status: str | None = None) -> bool:
    """Tell systemd the service is shutting down (draining connections)."""
    return notify("STOPPING=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))


def notify_status(text: str) -> bool:
    """A free-form one-line status for ``systemctl status`` (never message content)."""
    return notify(f"STATUS={_one_line(text)}")


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings, or None when no watchdog is expected.

    systemd sets ``WATCHDOG_USEC`` (the timeout) and ``WATCHDOG_PID`` (the process that
    must ping; absent means "the main process"). We ping at half the timeout, as
    sd_watchdog_enabled(3) recommends, so one late event-loop tick does not kill us.
    """
    env = os.environ if environ is None else environ
    usec_text = env.get("WATCHDOG_USEC", "")
    if not usec_text.isdigit() or int(usec_text) == 0:
        return None
    pid_text = env.get("WATCHDOG_PID", "")
    if pid_text and (not pid_text.isdigit() or int(pid_text) != os.getpid()):
        return None
    return int(usec_text) / 1_000_000 / 2


def _socket_address(value: str) -> str | bytes | None:
    if value.startswith("@"):
        # Linux abstract namespace: a leading NUL instead of the "@" systemd writes.
        return b"\0" + value[1:].encode("utf-8")
    if value.startswith("/"):
        return value
    return None  # unset, or a vsock address we do not support


def _one_line(text: str) -> str:
    return " ".join(text.split())
