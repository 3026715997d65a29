"""The ``monitor`` section of a NodeMemoryReserve spec: which monitors run and their knobs.

Every monitor's section is one settings class whose ``FIELDS`` say how the spec spells each
knob, its JSON type and the range the CRDs and the chart's values schema allow (the safe
envelope of docs/safety.md; ``__post_init__`` checks only what the agent needs to work).
The codec (``from_spec``/``to_spec``) is derived from ``FIELDS``, and ``MonitorSettings``'
from ``MONITOR_SECTIONS``, the one list of sections. ``tests/wire/test_monitor_sections.py``
holds both CRDs, the values schema, the metrics label and the docs to that list, and names
every place that is out of step with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
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


class FieldType(Enum):
    """A knob's JSON type, as the CRDs' OpenAPI schema and the values schema spell it."""

    BOOLEAN = "boolean"
    INTEGER = "integer"
    NUMBER = "number"


@dataclass(frozen=True)
class SpecField:
    """One knob of a monitor section: its name in the spec, its attribute, its type and the
    range the CRDs and the chart allow (None: unbounded on that side)."""

    spec: str
    attr: str
    type: FieldType
    minimum: int | None = None
    maximum: int | None = None

    def read(self, spec: Mapping[str, Any], default: Any, path: str) -> Any:
        match self.type:
            case FieldType.BOOLEAN:
                return bool_field(spec, self.spec, default, path)
            case FieldType.INTEGER:
                return int_field(spec, self.spec, default, path)
            case FieldType.NUMBER:
                return number_field(spec, self.spec, default, path)


ENABLED = SpecField("enabled", "enabled", FieldType.BOOLEAN)


class SpecSection:
    """The codec every monitor section shares, derived from its ``FIELDS``."""

    FIELDS: ClassVar[tuple[SpecField, ...]]

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], base: Self, path: str) -> Self:
        """``spec`` read onto ``base``: a field left out keeps the base's value."""
        values = {f.attr: f.read(spec, getattr(base, f.attr), path) for f in cls.FIELDS}
        return dataclasses.replace(base, **values)  # type: ignore[type-var]

    def to_spec(self) -> dict[str, Any]:
        return {f.spec: getattr(self, f.attr) for f in self.FIELDS}


@dataclass(frozen=True)
class EventMonitorSettings(SpecSection):
    """inotify on memory.events: react when the ``high`` counter rises."""

    FIELDS: ClassVar[tuple[SpecField, ...]] = (ENABLED,)

    enabled: bool = True


@dataclass(frozen=True)
class PolledMonitorSettings(SpecSection):
    """A monitor that polls a usage figure against a share of a limit: the knobs the
    threshold and host-memory monitors share, and their spec codec."""

    SPEC_PATH: ClassVar[str] = "monitor"
    FIELDS: ClassVar[tuple[SpecField, ...]] = (
        ENABLED,
        SpecField("usagePercent", "usage_percent", FieldType.NUMBER, 50, 100),
        SpecField("intervalMilliseconds", "interval_ms", FieldType.INTEGER, 10, 60_000),
    )

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


@dataclass(frozen=True)
class ThresholdMonitorSettings(PolledMonitorSettings):
    """Poll usage against the limit; catches memory that escaped the cgroup (e.g. shmem)."""

    SPEC_PATH: ClassVar[str] = "monitor.threshold"


@dataclass(frozen=True)
class PressureMonitorSettings(SpecSection):
    """A PSI trigger: ``some <stall> <window>`` on the guarded cgroup's memory.pressure."""

    FIELDS: ClassVar[tuple[SpecField, ...]] = (
        ENABLED,
        SpecField("stallMilliseconds", "stall_ms", FieldType.INTEGER, 1),
        SpecField(
            "windowMilliseconds",
            "window_ms",
            FieldType.INTEGER,
            PSI_WINDOW_MIN_MS,
            PSI_WINDOW_MAX_MS,
        ),
    )

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


@dataclass(frozen=True)
class HostMemoryMonitorSettings(PolledMonitorSettings):
    """Poll the whole machine's used memory (MemTotal - MemAvailable) against a share of the
    node's memory: notices memory taken outside kubepods (system daemons, the kernel) eating
    into the reserve, which kubepods' own counters never show. Off by default."""

    SPEC_PATH: ClassVar[str] = "monitor.hostMemory"

    enabled: bool = False


@dataclass(frozen=True)
class MonitorSection:
    """One monitor's place in the ``monitor`` spec: ``key`` is also the monitor's name (the
    registry's, ``oomguard_monitor_up``'s label, ``/status``'), ``attr`` its field of
    ``MonitorSettings``. ``optional``: written only when it differs from its defaults, so
    specs written before the section existed read back unchanged."""

    key: str
    attr: str
    settings: type[SpecSection]
    optional: bool = False


MONITOR_SECTIONS = (
    MonitorSection("event", "event", EventMonitorSettings),
    MonitorSection("threshold", "threshold", ThresholdMonitorSettings),
    MonitorSection("pressure", "pressure", PressureMonitorSettings),
    MonitorSection("hostMemory", "host_memory", HostMemoryMonitorSettings, optional=True),
)


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
        sections: dict[str, Any] = {
            s.attr: s.settings.from_spec(
                section(spec, s.key, path), getattr(base, s.attr), f"{path}.{s.key}"
            )
            for s in MONITOR_SECTIONS
        }
        return dataclasses.replace(base, **sections)

    def to_spec(self) -> dict[str, Any]:
        """Optional sections (``hostMemory``) only when they say something other than the
        defaults, so specs written before they existed read back unchanged."""
        spec = {}
        for s in MONITOR_SECTIONS:
            settings: SpecSection = getattr(self, s.attr)
            if not s.optional or settings != type(settings)():
                spec[s.key] = settings.to_spec()
        return spec
