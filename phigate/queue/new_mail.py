""""New mail is in the queue": the signal that sends accepted mail on its way at once.

Delivery claims due recipients in a loop and, with nothing to do, waits for its poll
interval (``[delivery] poll_interval_seconds``, 1 s). Without a signal, mail accepted
meanwhile waited for that poll: up to a second of delivery latency per message, and
delivery working in bursts (a second's worth of mail claimed at once, then a second idle),
which on a saturated machine takes the cores from acceptance in the same bursts (measured:
the scanner workers fell from ~1.2 cores to ~0.5 while the delivery child caught up, and the
slowest acceptances of a run were all in those bursts; ``bench/RESULTS.md``, issue 16).

The queue store fires :class:`NewMail` after each commit that queued a message for
delivery; delivery subscribes to it in its own process (:mod:`phigate.serve`), and ``serve``
forwards it to its delivery child (:mod:`phigate.mta.delivery.wake_link`). Listeners run in
the committing thread, so they must be quick and thread-safe (a ``call_soon_threadsafe``,
a one-byte send). The poll stays, for what no signal reports: retries coming due, another
node's mail, a release by the admin tools.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Listener = Callable[[], None]


class NewMail:
    """Listeners called after each commit that queued mail for delivery."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: tuple[Listener, ...] = ()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` from now on; returns the function that stops it."""
        with self._lock:
            self._listeners += (listener,)

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = tuple(known for known in self._listeners
                                        if known is not listener)
        return unsubscribe

    def notify(self) -> None:
        """Tell every listener; one that fails is logged and does not stop the others
        (nor the enqueue that fired it: the mail is committed, the poll will find it)."""
        for listener in self._listeners:
            try:
                listener()
            except Exception as error:  # a wake-up must not fail the commit that fired it
                log.warning("new_mail_listener_failed error=%s", type(error).__name__)
