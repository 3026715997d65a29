"""The host-memory monitor: the whole machine's used memory (MemTotal - MemAvailable,
/proc/meminfo) polled against ``usagePercent`` of the node's memory, for memory taken outside
kubepods (system daemons, the kernel) eating into the reserve. Its triggers are threshold
triggers: the step that answers them decides on kubepods as always. It needs the node's
memory to draw its line, so it does not run while that is unknown."""

from __future__ import annotations

from oomguard.monitor.kernel.cgroupfs import Cgroup
from oomguard.monitor.triggers.monitor_config import ThresholdConfig, UsageScope
from oomguard.monitor.triggers.monitor_kind import MonitorKind, NodeFacts, Off
from oomguard.monitor.triggers.threshold_monitor import HostMemoryUsed, ThresholdMonitor
from oomguard.monitor.triggers.trigger import Monitor, TriggerKind
from oomguard.wire.monitor_sections import host_memory
from oomguard.wire.monitor_sections.host_memory import HostMemoryMonitorSettings


class HostMemoryKind(MonitorKind[HostMemoryMonitorSettings, ThresholdConfig]):
    section = host_memory.SECTION
    trigger = TriggerKind.THRESHOLD
    polls = True

    def node_config(
        self, settings: HostMemoryMonitorSettings, facts: NodeFacts
    ) -> ThresholdConfig | Off:
        if facts.node_memory_bytes <= 0:
            return Off()
        limit = max(1, int(facts.node_memory_bytes * settings.usage_percent / 100))
        return ThresholdConfig(limit, settings.interval_ms / 1000, UsageScope.HOST)

    def build(self, cgroup: Cgroup, config: ThresholdConfig) -> Monitor:
        return ThresholdMonitor(
            HostMemoryUsed(), config.limit_bytes, config.interval_s, name=self.name
        )


HOST_MEMORY = HostMemoryKind()
