"""The node agent's pod view, as Prometheus metrics read at scrape time: whether it is blind
(no pod objects to trust, so pod cgroups on disk are kill-only candidates) and how many pods
known from their cgroup alone were killed, each without an Event (nothing to post it on)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "oomguard"


class PodViewCounts(Protocol):
    def pod_view_counts(self) -> tuple[bool, int]:
        """Whether the pod view is blind, and kills of pods known from their cgroup alone."""
        ...


class PodViewCollector(Collector):
    def __init__(self, source: PodViewCounts) -> None:
        self._source = source

    def describe(self) -> list[Metric]:
        return [
            GaugeMetricFamily(f"{PREFIX}_pod_view_blind", ""),
            CounterMetricFamily(f"{PREFIX}_kill_only_kills", ""),
        ]

    def collect(self) -> Iterator[Metric]:
        blind, kills = self._source.pod_view_counts()
        yield GaugeMetricFamily(
            f"{PREFIX}_pod_view_blind",
            "1 while the agent's pod view is blind (never listed, or disconnected from the "
            "API server for over 120 s): pod cgroups without a pod object are kill-only "
            "candidates; 0 otherwise.",
            value=1 if blind else 0,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_kill_only_kills",
            "Pods known from their cgroup alone (no pod object) that were cgroup.killed; no "
            "Event could be posted for them.",
            value=kills,
        )
