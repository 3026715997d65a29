"""Who else writes the node agent's line, as Prometheus counters read at scrape time: how
often kubepods ``memory.high`` was found changed and put back, and how often systemd refused
(or could not be asked for) the same value as ``MemoryHigh=``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "oomguard"


class MemoryHighCounts(Protocol):
    def counts(self) -> tuple[int, int | None]:
        """Drift repairs, and systemd failures (None when systemd is not asked)."""
        ...


class MemoryHighCollector(Collector):
    def __init__(self, source: MemoryHighCounts) -> None:
        self._source = source

    def describe(self) -> list[Metric]:
        return [
            CounterMetricFamily(f"{PREFIX}_memory_high_drift", ""),
            CounterMetricFamily(f"{PREFIX}_systemd_failures", ""),
        ]

    def collect(self) -> Iterator[Metric]:
        repairs, failures = self._source.counts()
        yield CounterMetricFamily(
            f"{PREFIX}_memory_high_drift",
            "Checks that found kubepods memory.high changed by someone else from the value "
            "the agent set (each one set again).",
            value=repairs,
        )
        if failures is not None:
            yield CounterMetricFamily(
                f"{PREFIX}_systemd_failures",
                "Calls that failed to set kubepods.slice MemoryHigh= through systemd's D-Bus "
                "(the cgroupfs value was written all the same).",
                value=failures,
            )
