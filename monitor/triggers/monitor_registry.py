"""Every kind of monitor in one list: its name (also its ``oomguard_monitor_up`` label and its
name in ``/status``), the kind of trigger it sends, whether a configuration asks for it, and
how it is built. ``build_monitors`` and the running names in status come from this list.

A kind's name is also its settings section's key: ``oomguard.wire.monitor_settings``
registers the section once (``MONITOR_SECTIONS``: fields, types, ranges), the spec codec is
derived from it, and ``tests/wire/test_monitor_sections.py`` lists every place (this list,
both CRDs, the chart's values schema, the metrics label, the docs) out of step with it.
Adding a kind also means its config field (``monitor_config.py``) and when the node agent
runs it (``modes/node_monitors.py``); see the "where do I change X" table in
docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from oomguard.monitor.kernel.cgroupfs import Cgroup
from oomguard.monitor.triggers.event_monitor import EventMonitor
from oomguard.monitor.triggers.monitor_config import MonitorConfig, UsageScope
from oomguard.monitor.triggers.pressure_monitor import PressureMonitor
from oomguard.monitor.triggers.threshold_monitor import (
    CgroupWorkingSet,
    HostMemoryUsed,
    ThresholdMonitor,
    UsageSource,
)
from oomguard.monitor.triggers.trigger import Monitor, TriggerKind


@dataclass(frozen=True)
class MonitorKind:
    name: str
    trigger: TriggerKind
    wanted: Callable[[MonitorConfig], bool]
    build: Callable[[Cgroup, MonitorConfig], Monitor]  # called only when wanted


def _threshold(cgroup: Cgroup, config: MonitorConfig) -> Monitor:
    assert config.threshold is not None  # wanted
    source: UsageSource = (
        HostMemoryUsed() if config.threshold.scope is UsageScope.HOST else CgroupWorkingSet(cgroup)
    )
    return ThresholdMonitor(source, config.threshold.limit_bytes, config.threshold.interval_s)


def _event(cgroup: Cgroup, config: MonitorConfig) -> Monitor:
    if config.event_counters is None:
        return EventMonitor(cgroup)
    return EventMonitor(cgroup, config.event_counters)


def _host_memory(cgroup: Cgroup, config: MonitorConfig) -> Monitor:
    assert config.host_memory is not None  # wanted
    limit, interval = config.host_memory.limit_bytes, config.host_memory.interval_s
    return ThresholdMonitor(HostMemoryUsed(), limit, interval, name="hostMemory")


def _pressure(cgroup: Cgroup, config: MonitorConfig) -> Monitor:
    assert config.pressure is not None  # wanted
    return PressureMonitor.for_cgroup(cgroup, config.pressure)


MONITOR_KINDS = (
    MonitorKind("event", TriggerKind.EVENT, lambda c: c.event, _event),
    MonitorKind("threshold", TriggerKind.THRESHOLD, lambda c: c.threshold is not None, _threshold),
    MonitorKind("pressure", TriggerKind.PRESSURE, lambda c: c.pressure is not None, _pressure),
    # a threshold on the whole machine: its triggers are threshold triggers
    MonitorKind(
        "hostMemory", TriggerKind.THRESHOLD, lambda c: c.host_memory is not None, _host_memory
    ),
)


def wanted_names(config: MonitorConfig) -> list[str]:
    """The names of the monitors ``config`` asks for, in registry order."""
    return [kind.name for kind in MONITOR_KINDS if kind.wanted(config)]


def build_monitors(cgroup: Cgroup, config: MonitorConfig) -> list[Monitor]:
    """The monitors ``config`` asks for, all watching ``cgroup``."""
    monitors = [kind.build(cgroup, config) for kind in MONITOR_KINDS if kind.wanted(config)]
    if not monitors:
        names = ", ".join(kind.name for kind in MONITOR_KINDS)
        raise ValueError(f"no monitor enabled: turn on at least one of {names}")
    return monitors
