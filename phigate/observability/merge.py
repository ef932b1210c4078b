"""One ``/metrics`` for two processes: ``serve``'s own registry and its delivery child's.

When delivery runs in a child process (see :mod:`phigate.serve_child`), its counters and
histograms (delivered, deferred, DKIM, TLS sessions, latency) live in the child's registry.
The parent asks the child for its exposition at scrape time and merges it with its own:

- counters, histograms and summaries are summed per (sample name, labels): each process
  counts its own events, and the parent's delivery families stay at their precreated 0;
- gauges, info and anything else: the parent's sample wins; the child's is added where the
  parent has none (a process's start time or memory is its own, not a sum). A counter's
  ``_created`` timestamp is exported as a gauge of its own, so it follows the same rule;
- a family only the child has is kept, after the parent's.

``phigate_process_cpu_seconds_total`` is therefore the CPU of both processes, while the
process gauges (memory, open files, start time) are the parent's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

__all__ = ["merge_expositions", "merge_families"]

#: Family types whose samples add up across processes.
_SUMMED = frozenset({"counter", "histogram", "summary"})

_Key = tuple[str, tuple[tuple[str, str], ...]]


def _key(sample: Sample) -> _Key:
    return sample.name, tuple(sorted(sample.labels.items()))


def _merged(own: Metric, other: Metric) -> Metric:
    summed = own.type in _SUMMED and other.type == own.type
    merged = Metric(own.name, own.documentation, own.type, own.unit)
    others = {_key(sample): sample for sample in other.samples}
    for sample in own.samples:
        match = others.pop(_key(sample), None)
        if summed and match is not None:
            sample = sample._replace(value=sample.value + match.value)
        merged.samples.append(sample)
    # What only the other process has (a label set the parent never used), in its order.
    merged.samples.extend(others.values())
    return merged


def merge_families(own: Iterable[Metric], other: Iterable[Metric]) -> list[Metric]:
    """``own``'s families with ``other``'s merged in (see the module's rules)."""
    others = {family.name: family for family in other}
    merged = [_merged(family, others.pop(family.name)) if family.name in others else family
              for family in own]
    return merged + list(others.values())


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def merge_expositions(own: bytes, other: bytes) -> bytes:
    """Two Prometheus text expositions (format 0.0.4) merged into one."""
    families = merge_families(text_string_to_metric_families(own.decode()),
                              text_string_to_metric_families(other.decode()))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)
