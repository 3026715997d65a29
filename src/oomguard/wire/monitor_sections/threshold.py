"""``monitor.threshold``: the guarded cgroup's working set polled against the target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from oomguard.wire.monitor_sections.polled import INTERVAL_MS, PolledMonitorSettings, usage_percent
from oomguard.wire.spec_section import ENABLED, MonitorSection, SpecField


@dataclass(frozen=True)
class ThresholdMonitorSettings(PolledMonitorSettings):
    """Poll usage against the limit; catches memory that escaped the cgroup (e.g. shmem)."""

    SPEC_PATH: ClassVar[str] = "monitor.threshold"
    FIELDS: ClassVar[tuple[SpecField, ...]] = (
        ENABLED,
        usage_percent(" (below 50 one decision evicts half the pods; see docs/safety.md)"),
        INTERVAL_MS,
    )


SECTION = MonitorSection(
    "threshold",
    ThresholdMonitorSettings,
    "kubepods' working set polled against the target (memory.high x usagePercent).",
)
