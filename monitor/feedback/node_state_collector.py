"""What the node agent enforces and where it came from, read from the agent at scrape time.

Answers an operator's first questions per node without a kubectl: the reserve and the line
the agent holds (``memory.high``), the target it frees memory down to, whether it only
pretends (dry run), and which NodeMemoryReserve generation (or the fallback) it applies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Protocol

from prometheus_client.metrics_core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from oomguard.monitor.kube.node_reserve import ReserveState
from oomguard.wire.node_settings import NodeSettings

log = logging.getLogger(__name__)

PREFIX = "oomguard"


class NodeStateSource(Protocol):
    @property
    def settings(self) -> NodeSettings: ...

    @property
    def reserve_state(self) -> ReserveState | None: ...

    def limit_bytes(self) -> int: ...

    def target_bytes(self) -> int: ...


class NodeStateCollector(Collector):
    def __init__(self, agent: NodeStateSource) -> None:
        self._agent = agent

    def describe(self) -> list[Metric]:
        return [
            GaugeMetricFamily(f"{PREFIX}_reserve_bytes", ""),
            GaugeMetricFamily(f"{PREFIX}_limit_bytes", ""),
            GaugeMetricFamily(f"{PREFIX}_target_bytes", ""),
            GaugeMetricFamily(f"{PREFIX}_dry_run", ""),
            InfoMetricFamily(f"{PREFIX}_reserve", ""),
        ]

    def collect(self) -> Iterator[Metric]:
        agent = self._agent
        settings, state = agent.settings, agent.reserve_state
        yield GaugeMetricFamily(
            f"{PREFIX}_reserve_bytes",
            "Memory the agent keeps for the system on this node, in bytes.",
            value=settings.reserve_bytes,
        )
        try:
            limit, target = agent.limit_bytes(), agent.target_bytes()
        except Exception as exc:  # a scrape never fails on the agent's state
            log.debug("no limit for metrics yet: %s", exc)
        else:
            yield GaugeMetricFamily(
                f"{PREFIX}_limit_bytes",
                "The pods' line: the memory.high the agent sets (or would set), in bytes.",
                value=limit,
            )
            yield GaugeMetricFamily(
                f"{PREFIX}_target_bytes",
                "Usage the agent frees memory down to once over its line, in bytes.",
                value=target,
            )
        yield GaugeMetricFamily(
            f"{PREFIX}_dry_run",
            "1 while the agent only decides and reports (dry run), 0 when it acts.",
            value=1 if settings.dry_run else 0,
        )
        generation = state.generation if state is not None else None
        yield InfoMetricFamily(
            f"{PREFIX}_reserve",
            "Where the applied settings come from: source policy (a NodeMemoryReserve, with "
            "its policy and generation) or fallback (none for this node yet).",
            value={
                "source": "fallback" if settings.source_policy is None else "policy",
                "policy": settings.source_policy or "",
                "generation": "" if generation is None else str(generation),
            },
        )
