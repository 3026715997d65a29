"""The pressure monitor: a PSI trigger (``some <stall> <window>``) on the guarded cgroup's
memory.pressure. On a node without memory.high it takes over the event monitor's role; it
cannot run without PSI (a kernel without it, or ``psi=0``)."""

from __future__ import annotations

from oomguard.monitor.kernel.cgroupfs import Cgroup
from oomguard.monitor.kernel.memory_pressure import PsiTrigger
from oomguard.monitor.triggers.monitor_kind import MonitorKind, NodeFacts, Off
from oomguard.monitor.triggers.pressure_monitor import PressureMonitor
from oomguard.monitor.triggers.trigger import Monitor, TriggerKind
from oomguard.wire.monitor_sections import event, pressure
from oomguard.wire.monitor_sections.pressure import PressureMonitorSettings


class PressureKind(MonitorKind[PressureMonitorSettings, PsiTrigger]):
    section = pressure.SECTION
    trigger = TriggerKind.PRESSURE
    stands_in_for = event.SECTION

    def node_config(self, settings: PressureMonitorSettings, facts: NodeFacts) -> PsiTrigger | Off:
        if not facts.pressure_available:
            return Off("pressure monitor off: no memory.pressure (kernel without PSI, or psi=0)")
        return PsiTrigger(settings.stall_ms * 1000, settings.window_ms * 1000)

    def build(self, cgroup: Cgroup, config: PsiTrigger) -> Monitor:
        return PressureMonitor.for_cgroup(cgroup, config)


PRESSURE = PressureKind()
