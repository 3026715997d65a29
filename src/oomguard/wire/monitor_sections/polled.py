"""The knobs every monitor shares that polls a usage figure against a share of a limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from oomguard.wire.spec_fields import between, require
from oomguard.wire.spec_section import ENABLED, FieldType, SpecField, SpecSection

INTERVAL_MS = SpecField("intervalMilliseconds", "interval_ms", FieldType.INTEGER, 10, 60_000)


def usage_percent(why: str) -> SpecField:
    """The share of the limit polled against; ``why`` tells the CRD's reader why not lower."""
    return SpecField("usagePercent", "usage_percent", FieldType.NUMBER, 50, 100, why)


@dataclass(frozen=True)
class PolledMonitorSettings(SpecSection):
    """A monitor that polls a usage figure against a share of a limit: the knobs the
    threshold and host-memory monitors share, checked against ``SPEC_PATH``."""

    SPEC_PATH: ClassVar[str] = "monitor"
    FIELDS: ClassVar[tuple[SpecField, ...]] = (ENABLED, usage_percent(""), INTERVAL_MS)

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
