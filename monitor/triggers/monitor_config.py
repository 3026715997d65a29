"""Which monitors a loop runs and their knobs, as a mode works them out from its settings."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from oomguard.monitor.kernel.memory_pressure import PsiTrigger


class UsageScope(Enum):
    CGROUP = "cgroup"  # working set of the guarded cgroup
    HOST = "host"  # MemTotal - MemAvailable of the whole machine


@dataclass(frozen=True)
class ThresholdConfig:
    limit_bytes: int
    interval_s: float = 0.1
    scope: UsageScope = UsageScope.CGROUP


@dataclass(frozen=True)
class MonitorConfig:
    """Which monitors to run. At least one must be on."""

    event: bool = True
    threshold: ThresholdConfig | None = None
    pressure: PsiTrigger | None = None
    host_memory: ThresholdConfig | None = None  # the machine's used memory (scope HOST)
    # the memory.events counters whose rise is a trigger; None: the event monitor's own
    # (high, max, oom, oom_kill). The node agent asks for high alone (node_monitors.py).
    event_counters: tuple[str, ...] | None = None
