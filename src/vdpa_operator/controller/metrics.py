"""Prometheus metrics of the operator, on its own registry (so tests can run several operators in one process).

`node_states` is collected at scrape time from the informer cache: it is never stale and costs nothing between
scrapes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from vdpa_operator.api.models import SYNC_FAILED, SYNC_IN_PROGRESS, SYNC_SUCCEEDED, SriovNetworkNodeState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _NodeStateCollector(Collector):
    def __init__(self, states: Callable[[], Iterable[SriovNetworkNodeState]]) -> None:
        self._states = states

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("sriov_operator_node_states", "SriovNetworkNodeStates by status.syncStatus",
                                   labels=["sync_status"])
        counts = {SYNC_SUCCEEDED: 0, SYNC_IN_PROGRESS: 0, SYNC_FAILED: 0, "": 0}
        for state in self._states():
            status = state.status.sync_status
            counts[status] = counts.get(status, 0) + 1
        for status, count in sorted(counts.items()):
            family.add_metric([status or "Unknown"], count)
        yield family


class Metrics:
    def __init__(self, node_states: Callable[[], Iterable[SriovNetworkNodeState]] = tuple) -> None:
        self.registry = CollectorRegistry()
        self._duration = Histogram("sriov_operator_policy_sync_duration_seconds",
                                   "Duration of one full policy sync pass", registry=self.registry,
                                   buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self._failures = Counter("sriov_operator_policy_sync_failures", "Policy sync passes that failed",
                                 registry=self.registry)
        self.drains = Counter("sriov_operator_drain_transitions", "Drain state changes written by the operator",
                              ["state"], registry=self.registry)
        self.registry.register(_NodeStateCollector(node_states))

    def observe_sync(self, seconds: float) -> None:
        self._duration.observe(seconds)

    def sync_failed(self) -> None:
        self._failures.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
