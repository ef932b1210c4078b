"""A restart takes back its own work (issue 14 item 6)."""

from __future__ import annotations

import logging

from phigate.config import Settings
from phigate.observability.logs import log_event
from phigate.queue.store import SqlQueueStore

log = logging.getLogger("phigate.serve")


def take_back_leases(settings: Settings, store: SqlQueueStore) -> int:
    """A killed previous run of this node left its leases: give them back before delivery
    starts, so its mail goes out at once instead of after ``[delivery] lease_seconds``
    (see :meth:`SqlQueueStore.release_node_leases`). Runs in a thread."""
    node = settings.server.node()
    released = store.release_node_leases(node)
    log_event(log, "delivery_leases_taken_back", node=node, released=released)
    return released
