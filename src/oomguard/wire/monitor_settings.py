"""The ``monitor`` section of a NodeMemoryReserve spec: which monitors run and their knobs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from oomguard.wire.spec_fields import (
    between,
    bool_field,
    int_field,
    number_field,
    require,
    section,
)

# The PSI trigger window the kernel accepts (kernel/sched/psi.c: 500ms..10s).
PSI_WINDOW_MIN_MS = 500
PSI_WINDOW_MAX_MS = 10_000


@dataclass(frozen=True)
class EventMonitorSettings:
    """inotify on memory.events: react when the ``high`` counter rises."""

    enabled: bool = True

    @classmethod
    def from_spec(
        cls, spec: Mapping[str, Any], base: EventMonitorSettings, path: str
    ) -> EventMonitorSettings:
        return cls(enabled=bool_field(spec, "enabled", base.enabled, path))

    def to_spec(self) -> dict[str, Any]:
        return {"enabled": self.enabled}


@dataclass(frozen=True)
class PolledMonitorSettings:
    """A monitor that polls a usage figure against a share of a limit: the knobs the
    threshold and host-memory monitors share, and their spec codec."""

    SPEC_PATH: ClassVar[str] = "monitor"

    enabled: bool = True
    usage_percent: float = 95.0
    interval_ms: int = 1000

    def __post_init__(self) -> None:
        path = self.SPEC_PATH
        require(
            0 < self.usage_percent <= 100,
            f"{path}.usagePercent",
            f"must be greater than 0 and at most 100, got {self.usage_percent}",
        )
        between(self.interval_ms, 10, 60_000, f"{path}.intervalMilliseconds")

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], base: Self, path: str) -> Self:
        return cls(
            enabled=bool_field(spec, "enabled", base.enabled, path),
            usage_percent=number_field(spec, "usagePercent", base.usage_percent, path),
            interval_ms=int_field(spec, "intervalMilliseconds", base.interval_ms, path),
        )

    def to_spec(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "usagePercent": self.usage_percent,
            "intervalMilliseconds": self.interval_ms,
        }


@dataclass(frozen=True)
class ThresholdMonitorSettings(PolledMonitorSettings):
    """Poll usage against the limit; catches memory that escaped the cgroup (e.g. shmem)."""

    SPEC_PATH: ClassVar[str] = "monitor.threshold"


@dataclass(frozen=True)
class PressureMonitorSettings:
    """A PSI trigger: ``some <stall> <window>`` on the guarded cgroup's memory.pressure."""

    enabled: bool = False
    stall_ms: int = 100
    window_ms: int = 1000

    def __post_init__(self) -> None:
        path = "monitor.pressure"
        between(
            self.window_ms,
            PSI_WINDOW_MIN_MS,
            PSI_WINDOW_MAX_MS,
            f"{path}.windowMilliseconds",
            " (the PSI window the kernel accepts)",
        )
        require(
            self.stall_ms > 0, f"{path}.stallMilliseconds", f"must be positive, got {self.stall_ms}"
        )
        require(
            self.stall_ms <= self.window_ms,
            f"{path}.stallMilliseconds",
            f"must not exceed windowMilliseconds ({self.stall_ms} > {self.window_ms})",
        )

    @classmethod
    def from_spec(
        cls, spec: Mapping[str, Any], base: PressureMonitorSettings, path: str
    ) -> PressureMonitorSettings:
        return cls(
            enabled=bool_field(spec, "enabled", base.enabled, path),
            stall_ms=int_field(spec, "stallMilliseconds", base.stall_ms, path),
            window_ms=int_field(spec, "windowMilliseconds", base.window_ms, path),
        )

    def to_spec(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "stallMilliseconds": self.stall_ms,
            "windowMilliseconds": self.window_ms,
        }


@dataclass(frozen=True)
class HostMemoryMonitorSettings(PolledMonitorSettings):
    """Poll the whole machine's used memory (MemTotal - MemAvailable) against a share of the
    node's memory: notices memory taken outside kubepods (system daemons, the kernel) eating
    into the reserve, which kubepods' own counters never show. Off by default."""

    SPEC_PATH: ClassVar[str] = "monitor.hostMemory"

    enabled: bool = False


@dataclass(frozen=True)
class MonitorSettings:
    event: EventMonitorSettings = field(default_factory=EventMonitorSettings)
    threshold: ThresholdMonitorSettings = field(default_factory=ThresholdMonitorSettings)
    pressure: PressureMonitorSettings = field(default_factory=PressureMonitorSettings)
    # an extra watcher, not one of the three the "at least one" rule is about
    host_memory: HostMemoryMonitorSettings = field(default_factory=HostMemoryMonitorSettings)

    def __post_init__(self) -> None:
        require(
            self.event.enabled or self.threshold.enabled or self.pressure.enabled,
            "monitor",
            "at least one of event, threshold or pressure must stay enabled",
        )

    @classmethod
    def from_spec(
        cls, spec: Mapping[str, Any], base: MonitorSettings | None = None, path: str = "monitor"
    ) -> MonitorSettings:
        base = base or cls()
        return cls(
            event=EventMonitorSettings.from_spec(
                section(spec, "event", path), base.event, f"{path}.event"
            ),
            threshold=ThresholdMonitorSettings.from_spec(
                section(spec, "threshold", path), base.threshold, f"{path}.threshold"
            ),
            pressure=PressureMonitorSettings.from_spec(
                section(spec, "pressure", path), base.pressure, f"{path}.pressure"
            ),
            host_memory=HostMemoryMonitorSettings.from_spec(
                section(spec, "hostMemory", path), base.host_memory, f"{path}.hostMemory"
            ),
        )

    def to_spec(self) -> dict[str, Any]:
        """``hostMemory`` only when it says something other than the defaults, so specs
        written before it existed read back unchanged."""
        spec = {
            "event": self.event.to_spec(),
            "threshold": self.threshold.to_spec(),
            "pressure": self.pressure.to_spec(),
        }
        if self.host_memory != HostMemoryMonitorSettings():
            spec["hostMemory"] = self.host_memory.to_spec()
        return spec
