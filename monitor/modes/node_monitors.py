"""Which monitors the node agent runs, from its settings and what the kernel allows (pure).

- event: inotify on kubepods ``memory.events``; only useful while we set ``memory.high`` (its
  ``high`` counter is the signal), so it is off on kernels older than 5.9. Only a rise of
  ``high`` is a trigger: ``memory.events`` counts the whole subtree, so its ``max``, ``oom``
  and ``oom_kill`` rise for every container at its *own* ``memory.max``, and kubepods cannot
  reach its own ``max`` without crossing the ``memory.high`` we set below it first
  (docs/node-agent.md, "What wakes the event monitor").
- threshold: kubepods working set polled against the agent's target (the same line the
  decision uses), so a breach leads to exactly the decision that ends it.
- pressure: a PSI trigger on kubepods ``memory.pressure``.
- hostMemory (off by default): the machine's used memory (MemTotal - MemAvailable) polled
  against ``usagePercent`` of the node's memory, for memory taken outside kubepods.

On kernels older than 5.9 the threshold monitor always runs (it is the guard there), and the
pressure monitor takes over the event monitor's role: it runs when either was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from oomguard.monitor.kernel.memory_pressure import PsiTrigger
from oomguard.monitor.triggers.factory import MonitorConfig, ThresholdConfig, UsageScope
from oomguard.wire.node_settings import MonitorSettings

KUBEPODS_EVENT_COUNTERS: Final = ("high",)
"""The ``memory.events`` counters whose rise wakes the node agent (see the module doc)."""


@dataclass(frozen=True)
class NodeMonitorPlan:
    """The monitor configuration and the notes that explain any deviation from the settings."""

    config: MonitorConfig
    notes: tuple[str, ...] = ()


def node_monitor_plan(
    settings: MonitorSettings,
    target_bytes: int,
    memory_high_set: bool,
    pressure_available: bool = True,
    node_memory_bytes: int = 0,
) -> NodeMonitorPlan:
    """``node_memory_bytes``: what the host-memory monitor's line is a share of (0: unknown,
    and that monitor does not run)."""
    notes: list[str] = []
    event = settings.event.enabled and memory_high_set
    if settings.event.enabled and not memory_high_set:
        notes.append(
            "event monitor off: memory.high is not set (dry run, or a kernel older than 5.9)"
        )
    threshold_on = settings.threshold.enabled or not memory_high_set
    if not settings.threshold.enabled and not memory_high_set:
        notes.append("threshold monitor on although disabled: it is the guard without memory.high")
    pressure_on = settings.pressure.enabled or (not memory_high_set and settings.event.enabled)
    if pressure_on and not settings.pressure.enabled:
        notes.append("pressure monitor on in place of the event monitor (no memory.high)")
    if pressure_on and not pressure_available:
        notes.append("pressure monitor off: no memory.pressure (kernel without PSI, or psi=0)")
        pressure_on = False
    threshold = (
        ThresholdConfig(
            limit_bytes=max(1, target_bytes),
            interval_s=settings.threshold.interval_ms / 1000,
            scope=UsageScope.CGROUP,
        )
        if threshold_on
        else None
    )
    pressure = (
        PsiTrigger(settings.pressure.stall_ms * 1000, settings.pressure.window_ms * 1000)
        if pressure_on
        else None
    )
    if not (event or threshold or pressure):
        # settings guarantee one monitor; only "pressure alone, no PSI" ends here
        notes.append("threshold monitor on: the only enabled monitor cannot run here")
        threshold = ThresholdConfig(
            limit_bytes=max(1, target_bytes), interval_s=settings.threshold.interval_ms / 1000
        )
    host = settings.host_memory
    host_memory = (
        ThresholdConfig(
            limit_bytes=max(1, int(node_memory_bytes * host.usage_percent / 100)),
            interval_s=host.interval_ms / 1000,
            scope=UsageScope.HOST,
        )
        if host.enabled and node_memory_bytes > 0
        else None
    )
    config = MonitorConfig(event, threshold, pressure, host_memory, KUBEPODS_EVENT_COUNTERS)
    return NodeMonitorPlan(config, tuple(notes))
