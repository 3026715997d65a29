"""The event monitor: inotify on memory.events, a trigger when a counter rises.

On the node only ``high`` counts: kubepods' ``memory.events`` counts its whole subtree, so
its ``max``, ``oom`` and ``oom_kill`` rise for every container at its *own* ``memory.max``,
and kubepods cannot reach its own ``max`` without crossing the ``memory.high`` the agent sets
first (docs/node-agent.md, "What wakes the event monitor"). Without memory.high (dry run, or a
kernel older than 5.9) ``high`` never rises, so the monitor does not run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from oomguard.monitor.kernel.cgroupfs import Cgroup
from oomguard.monitor.triggers.event_monitor import EventMonitor
from oomguard.monitor.triggers.monitor_kind import GuardFacts, MonitorKind, NodeFacts, Off
from oomguard.monitor.triggers.trigger import Monitor, TriggerKind
from oomguard.wire.monitor_sections import event
from oomguard.wire.monitor_sections.event import EventMonitorSettings

KUBEPODS_EVENT_COUNTERS: Final = ("high",)
"""The ``memory.events`` counters whose rise wakes the node agent (see the module doc)."""


@dataclass(frozen=True)
class EventConfig:
    """``counters``: the memory.events counters whose rise is a trigger; None: the event
    monitor's own (high, max, oom, oom_kill), as the guard uses them."""

    counters: tuple[str, ...] | None = None


class EventKind(MonitorKind[EventMonitorSettings, EventConfig]):
    section = event.SECTION
    trigger = TriggerKind.EVENT

    def node_config(self, settings: EventMonitorSettings, facts: NodeFacts) -> EventConfig | Off:
        if not facts.memory_high_set:
            return Off(
                "event monitor off: memory.high is not set (dry run, or a kernel older than 5.9)"
            )
        return EventConfig(KUBEPODS_EVENT_COUNTERS)

    def guard_config(self, facts: GuardFacts) -> EventConfig | None:
        """Only where memory.high is written: otherwise there is nothing to cross."""
        return EventConfig() if self.name in facts.asked and facts.memory_high_set else None

    def build(self, cgroup: Cgroup, config: EventConfig) -> Monitor:
        if config.counters is None:
            return EventMonitor(cgroup)
        return EventMonitor(cgroup, config.counters)


EVENT = EventKind()
