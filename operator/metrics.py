"""The operator's Prometheus metrics, on their own registry (served on ``--metrics-port``)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    start_http_server,
)

from oomguard import __version__

# No ``*_created`` series beside every counter and histogram (as for the agent): twice the
# series for nothing a dashboard uses. Process-wide in prometheus_client; the operator owns
# its process.
disable_created_metrics()  # type: ignore[no-untyped-call]


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.build_info = Info(
            "oomguard_operator_build",
            "The operator's version (value is always 1).",
            registry=self.registry,
        )
        self.build_info.info({"version": __version__})
        self.reconciles = Counter(
            "oomguard_operator_reconciles_total",
            "Full reconciles run, by what started them.",
            ["trigger"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "oomguard_operator_reconcile_duration_seconds",
            "Time for one reconcile, resolution and writes included.",
            registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.writes = Counter(
            "oomguard_operator_objects_written_total",
            "API writes made by the operator.",
            ["kind", "verb"],
            registry=self.registry,
        )
        self.write_errors = Counter(
            "oomguard_operator_write_errors_total",
            "API writes that failed (retried by the next reconcile).",
            ["kind", "verb"],
            registry=self.registry,
        )
        self.conflicts = Gauge(
            "oomguard_operator_conflicting_nodes",
            "Nodes where equal-priority policies compete.",
            registry=self.registry,
        )
        self.conflicts_seen = Counter(
            "oomguard_operator_conflicts_total",
            "Reconciles that found at least one equal-priority conflict.",
            registry=self.registry,
        )
        self.nodes_governed = Gauge(
            "oomguard_operator_nodes_governed",
            "Nodes with a NodeMemoryReserve from some policy.",
            registry=self.registry,
        )
        self.invalid_policies = Gauge(
            "oomguard_operator_invalid_policies",
            "Policies the operator could not resolve (see their Ready condition).",
            registry=self.registry,
        )

    def serve(self, port: int, address: str = "0.0.0.0") -> None:  # noqa: S104 - a pod port
        start_http_server(port, addr=address, registry=self.registry)

    def total_writes(self) -> int:
        total = 0.0
        for metric in self.writes.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    total += sample.value
        return int(total)
