"""``monitor.hostMemory``: the whole machine's used memory against a share of the node's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from oomguard.wire.monitor_sections.polled import INTERVAL_MS, PolledMonitorSettings, usage_percent
from oomguard.wire.spec_section import ENABLED, MonitorSection, SpecField


@dataclass(frozen=True)
class HostMemoryMonitorSettings(PolledMonitorSettings):
    """Poll the whole machine's used memory (MemTotal - MemAvailable) against a share of the
    node's memory: notices memory taken outside kubepods (system daemons, the kernel) eating
    into the reserve, which kubepods' own counters never show. Off by default."""

    SPEC_PATH: ClassVar[str] = "monitor.hostMemory"
    FIELDS: ClassVar[tuple[SpecField, ...]] = (
        ENABLED,
        usage_percent(" (see docs/safety.md)"),
        INTERVAL_MS,
    )

    enabled: bool = False


SECTION = MonitorSection(
    "hostMemory",
    HostMemoryMonitorSettings,
    "Off by default: poll the machine's used memory (MemTotal - MemAvailable) against "
    "usagePercent of the node's memory, for memory taken outside kubepods.",
    optional=True,
    stands_alone=False,  # an extra watcher: it never decides on the memory it sees
)
