"""Process resources: the open-files limit, and floods of event-loop errors in the log.

Every SMTP session and HTTP connection is a file descriptor. When the soft ``RLIMIT_NOFILE``
is below what the session caps allow, the process runs out before the caps refuse anyone:
``accept()`` fails, nobody gets a banner, ``/healthz`` goes unanswered. So ``serve`` raises
the soft limit towards what it needs (up to the hard limit) and warns if that is not enough.

When accept() does fail, asyncio reports it through the loop's exception handler on every
retry; unlimited, that wrote 200 MB of log in two minutes. :class:`RateLimitedLoopErrors`
logs each kind of loop error at most once per interval, with the count it held back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from phigate.observability.logs import log_event

if TYPE_CHECKING:
    from phigate.config import Settings

log = logging.getLogger("phigate.resources")

#: Descriptors beyond the session caps: database, DNS, delivery, scanner pipes, logs.
BASE_DESCRIPTORS = 256
#: Descriptors allowed for HTTP connections (closed after [http] header_timeout_seconds).
HTTP_DESCRIPTORS = 1024


@dataclass(frozen=True)
class OpenFilesCheck:
    soft: int
    hard: int
    needed: int

    @property
    def enough(self) -> bool:
        return self.soft >= self.needed


def ensure_open_files(needed: int) -> OpenFilesCheck | None:
    """Raise the soft open-files limit towards ``needed``; warn if it stays below.

    None where the platform has no ``resource`` module. A seccomp filter (the shipped
    units forbid ``setrlimit``; they set ``LimitNOFILE=`` instead) makes raising fail: then
    the check only warns.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):
            pass
    check = OpenFilesCheck(soft=soft, hard=hard, needed=needed)
    if not check.enough:
        log_event(log, "open_files_limit_low", level=logging.WARNING, soft=soft, hard=hard,
                  needed=needed, hint="raise LimitNOFILE= (systemd) or ulimit -n")
    return check


def descriptors_needed(settings: Settings, roles: frozenset[str]) -> int:
    """File descriptors the session caps allow, plus the process's own (see resources)."""
    needed = BASE_DESCRIPTORS
    if "smtp" in roles:
        listeners = 2 if settings.submission.implicit_tls_listen else 1
        needed += listeners * settings.submission.max_sessions + settings.feedback.max_sessions
    if "http" in roles:
        needed += HTTP_DESCRIPTORS
    return needed


class RateLimitedLoopErrors:
    """An asyncio exception handler that logs each kind of error at most once per interval.

    The kind is the context's ``message`` (e.g. ``socket.accept() out of system
    resource``); only it, the exception's type and errno are logged, never the context's
    objects (they can name peers and carry data).
    """

    def __init__(self, *, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self.logged = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        kind = str(context.get("message") or "unknown")[:120]
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        self._last[kind] = now
        held = self._held.pop(kind, 0)
        error = context.get("exception")
        self.logged += 1
        log_event(log, "event_loop_error", level=logging.ERROR, kind=kind,
                  error=type(error).__name__ if error is not None else None,
                  errno=getattr(error, "errno", None), suppressed=held)

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.set_exception_handler(self)
