"""The threshold monitor: the guarded cgroup's working set polled against the line the
decision uses (the node agent's target, the guard's memory.high), so a breach leads to
exactly the decision that ends it. Without memory.high it is the guard itself: it runs even
when disabled, and it is the monitor of last resort when nothing else can run."""

from __future__ import annotations

from oomguard.monitor.kernel.cgroupfs import Cgroup
from oomguard.monitor.triggers.monitor_config import ThresholdConfig, UsageScope
from oomguard.monitor.triggers.monitor_kind import GuardFacts, MonitorKind, NodeFacts, Off
from oomguard.monitor.triggers.threshold_monitor import (
    CgroupWorkingSet,
    HostMemoryUsed,
    ThresholdMonitor,
    UsageSource,
)
from oomguard.monitor.triggers.trigger import Monitor, TriggerKind
from oomguard.wire.monitor_sections import threshold
from oomguard.wire.monitor_sections.threshold import ThresholdMonitorSettings


class ThresholdKind(MonitorKind[ThresholdMonitorSettings, ThresholdConfig]):
    section = threshold.SECTION
    trigger = TriggerKind.THRESHOLD
    polls = True
    guards_without_memory_high = True
    last_resort = True

    def node_config(
        self, settings: ThresholdMonitorSettings, facts: NodeFacts
    ) -> ThresholdConfig | Off:
        return ThresholdConfig(max(1, facts.target_bytes), settings.interval_ms / 1000)

    def guard_config(self, facts: GuardFacts) -> ThresholdConfig | None:
        if self.name not in facts.asked:
            return None
        return ThresholdConfig(facts.memory_high, facts.interval_s)

    def build(self, cgroup: Cgroup, config: ThresholdConfig) -> Monitor:
        source: UsageSource = (
            HostMemoryUsed() if config.scope is UsageScope.HOST else CgroupWorkingSet(cgroup)
        )
        return ThresholdMonitor(source, config.limit_bytes, config.interval_s)


THRESHOLD = ThresholdKind()
