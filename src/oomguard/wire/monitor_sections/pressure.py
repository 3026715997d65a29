"""``monitor.pressure``: a PSI trigger on the guarded cgroup's memory.pressure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from oomguard.wire.spec_fields import between, require
from oomguard.wire.spec_section import (
    ENABLED,
    CelRule,
    FieldType,
    MonitorSection,
    SpecField,
    SpecSection,
)

# The PSI trigger window the kernel accepts (kernel/sched/psi.c: 500ms..10s).
PSI_WINDOW_MIN_MS = 500
PSI_WINDOW_MAX_MS = 10_000


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
            " (the PSI trigger window the kernel accepts)",
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


_DEFAULT = PressureMonitorSettings()

SECTION = MonitorSection(
    "pressure",
    PressureMonitorSettings,
    "A PSI trigger (some stall within a window) on kubepods' memory.pressure.",
    rules=(
        CelRule(
            f"(has(self.stallMilliseconds) ? self.stallMilliseconds : {_DEFAULT.stall_ms})"
            f" <= (has(self.windowMilliseconds) ? self.windowMilliseconds : {_DEFAULT.window_ms})",
            "monitor.pressure.stallMilliseconds must not exceed windowMilliseconds "
            f"(defaults: stall {_DEFAULT.stall_ms}, window {_DEFAULT.window_ms})",
        ),
    ),
)
