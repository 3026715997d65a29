"""The ``monitor`` section of a NodeMemoryReserve spec: which monitors run and their knobs.

Each monitor's section is declared once, in its own file under ``wire/monitor_sections``
(``SpecField``: spec name, JSON type, the range the CRDs and the chart's values schema allow,
the safe envelope of docs/safety.md; ``__post_init__`` checks only what the agent needs to
work). ``MONITOR_SECTIONS`` is the one list of them; ``MonitorSettings`` and its codec iterate
it rather than naming sections, and ``oomguard.wire.monitor_schema`` writes the CRDs, the
values schema and the docs table from it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from oomguard.wire.monitor_sections import event, host_memory, pressure, threshold
from oomguard.wire.monitor_sections.event import EventMonitorSettings
from oomguard.wire.monitor_sections.host_memory import HostMemoryMonitorSettings
from oomguard.wire.monitor_sections.polled import PolledMonitorSettings
from oomguard.wire.monitor_sections.pressure import (
    PSI_WINDOW_MAX_MS,
    PSI_WINDOW_MIN_MS,
    PressureMonitorSettings,
)
from oomguard.wire.monitor_sections.threshold import ThresholdMonitorSettings
from oomguard.wire.spec_fields import require, section
from oomguard.wire.spec_section import (
    ENABLED,
    FieldType,
    MonitorSection,
    SpecField,
    SpecSection,
)

__all__ = [  # what callers imported from here before the sections had files of their own
    "ENABLED",
    "MONITOR_SECTIONS",
    "PSI_WINDOW_MAX_MS",
    "PSI_WINDOW_MIN_MS",
    "EventMonitorSettings",
    "FieldType",
    "HostMemoryMonitorSettings",
    "MonitorSection",
    "MonitorSettings",
    "PolledMonitorSettings",
    "PressureMonitorSettings",
    "SpecField",
    "SpecSection",
    "ThresholdMonitorSettings",
]

Sections = tuple[MonitorSection[Any], ...]

MONITOR_SECTIONS: Sections = (
    event.SECTION,
    threshold.SECTION,
    pressure.SECTION,
    host_memory.SECTION,
)

S = TypeVar("S", bound=SpecSection)


class MonitorSettings:
    """One settings object per registered section, in registry order (immutable).

    Built from sections given by class (``MonitorSettings(PressureMonitorSettings(True))``)
    or by attribute (``MonitorSettings(pressure=...)``); the rest keep their defaults. Read
    typed with ``settings[section]``; ``settings.threshold``-style reading is kept for
    callers that do not need the type.
    """

    __slots__ = ("_sections", "registry")
    registry: Sections
    _sections: tuple[SpecSection, ...]

    def __init__(
        self,
        *given: SpecSection,
        registry: Sections = MONITOR_SECTIONS,
        **by_attr: SpecSection,
    ) -> None:
        by_class = {type(s): s for s in given}
        attrs = {s.attr for s in registry}
        unknown = [a for a in by_attr if a not in attrs] + [
            c.__name__ for c in by_class if c not in {s.settings for s in registry}
        ]
        if unknown:
            raise TypeError(f"MonitorSettings: no registered section {unknown}")
        sections = tuple(
            by_attr.get(s.attr) or by_class.get(s.settings) or s.default() for s in registry
        )
        object.__setattr__(self, "registry", registry)
        object.__setattr__(self, "_sections", sections)
        alone = [s for s in registry if s.stands_alone]
        require(
            not alone or any(self[s].enabled for s in alone),
            "monitor",
            f"at least one of {spoken_list([s.key for s in alone])} must stay enabled",
        )

    def __getitem__(self, section: MonitorSection[S]) -> S:
        found = self._sections[self.registry.index(section)]
        assert isinstance(found, section.settings)
        return found

    def __getattr__(self, attr: str) -> SpecSection:
        for registered, settings in zip(self.registry, self._sections, strict=True):
            if registered.attr == attr:
                return settings
        raise AttributeError(f"MonitorSettings has no section {attr!r}")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("MonitorSettings is immutable")

    def __iter__(self) -> Iterator[tuple[MonitorSection[Any], SpecSection]]:
        return iter(zip(self.registry, self._sections, strict=True))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MonitorSettings):
            return NotImplemented
        return (self.registry, self._sections) == (other.registry, other._sections)

    def __hash__(self) -> int:
        return hash(self._sections)

    def __copy__(self) -> MonitorSettings:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, Any]) -> MonitorSettings:
        return self

    def __repr__(self) -> str:
        inner = ", ".join(f"{s.attr}={v!r}" for s, v in self)
        return f"MonitorSettings({inner})"

    @classmethod
    def from_spec(
        cls,
        spec: Mapping[str, Any],
        base: MonitorSettings | None = None,
        path: str = "monitor",
        registry: Sections = MONITOR_SECTIONS,
    ) -> MonitorSettings:
        base = base or cls(registry=registry)
        read = [
            s.settings.from_spec(section(spec, s.key, path), settings, f"{path}.{s.key}")
            for s, settings in base
        ]
        return cls(*read, registry=base.registry)

    def to_spec(self) -> dict[str, Any]:
        """Optional sections (``hostMemory``) only when they say something other than the
        defaults, so specs written before they existed read back unchanged."""
        return {s.key: v.to_spec() for s, v in self if not s.optional or v != s.default()}


def spoken_list(words: list[str]) -> str:
    """``a, b or c``: how an error message lists alternatives."""
    return " or ".join(filter(None, [", ".join(words[:-1]), *words[-1:]]))
