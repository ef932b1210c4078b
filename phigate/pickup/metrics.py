"""Pickup metrics: events by kind and pickups by state; never an address or a token."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from phigate.observability.metrics import METRICS
from phigate.queue.pickup_models import PickupState

PICKUP_EVENTS = Counter("phigate_pickup_events_total",
                        "Secure pickup events (notice, code, failure, lockout, view, ...)",
                        ["event"], registry=METRICS.registry)


class PickupStateCollector(Collector):
    """``phigate_pickups{state}`` from the store at scrape time (every state, zeros too)."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("phigate_pickups", "Secure pickups by state",
                                   labels=["state"])
        try:
            counts = self._counts()
        except Exception:
            return []
        for state in PickupState:
            family.add_metric([state.value], float(counts.get(state.value, 0)))
        return [family]


_registered: list[PickupStateCollector] = []


def register_state_collector(counts: Callable[[], Mapping[str, int]]) -> None:
    """Once per process (serve); a second call replaces the source."""
    if _registered:
        METRICS.registry.unregister(_registered.pop())
    collector = PickupStateCollector(counts)
    METRICS.registry.register(collector)
    _registered.append(collector)
