"""One monitor's section of the ``monitor`` spec, declared once: its knobs (``SpecField``), the
codec every section shares (``SpecSection``), and its place in the spec (``MonitorSection``):
key, defaults, whether it may stand alone, and what the CRDs say about it beyond the ranges.

The CRDs, the chart's values schema and the docs table are generated from these declarations
(``oomguard.wire.monitor_schema``), so each fact about a section is written here only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Generic, Self, TypeVar

from oomguard.wire.spec_fields import bool_field, int_field, number_field


class FieldType(Enum):
    """A knob's JSON type, as the CRDs' OpenAPI schema and the values schema spell it."""

    BOOLEAN = "boolean"
    INTEGER = "integer"
    NUMBER = "number"


@dataclass(frozen=True)
class SpecField:
    """One knob of a monitor section: its name in the spec, its attribute, its type and the
    range the CRDs and the chart allow (None: unbounded on that side). ``why`` ends the CRD's
    message for an out-of-range value, e.g. `` (the PSI window the kernel accepts)``."""

    spec: str
    attr: str
    type: FieldType
    minimum: int | None = None
    maximum: int | None = None
    why: str = ""

    def read(self, spec: Mapping[str, Any], default: Any, path: str) -> Any:
        match self.type:
            case FieldType.BOOLEAN:
                return bool_field(spec, self.spec, default, path)
            case FieldType.INTEGER:
                return int_field(spec, self.spec, default, path)
            case FieldType.NUMBER:
                return number_field(spec, self.spec, default, path)


ENABLED = SpecField("enabled", "enabled", FieldType.BOOLEAN)


@dataclass(frozen=True)
class SpecSection:
    """The codec every monitor section shares, derived from its ``FIELDS``. Every section can
    be switched off, so ``enabled`` is the first knob of each."""

    FIELDS: ClassVar[tuple[SpecField, ...]] = (ENABLED,)

    enabled: bool = True

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], base: Self, path: str) -> Self:
        """``spec`` read onto ``base``: a field left out keeps the base's value."""
        values = {f.attr: f.read(spec, getattr(base, f.attr), path) for f in cls.FIELDS}
        return dataclasses.replace(base, **values)

    def to_spec(self) -> dict[str, Any]:
        return {f.spec: getattr(self, f.attr) for f in self.FIELDS}


@dataclass(frozen=True)
class CelRule:
    """A rule the policy CRD checks across a section's fields (the admission-time copy of a
    check in the section's ``__post_init__``)."""

    rule: str
    message: str


S = TypeVar("S", bound=SpecSection)


@dataclass(frozen=True)
class MonitorSection(Generic[S]):
    """One monitor's place in the ``monitor`` spec. ``key`` is also the monitor's name (the
    registry's, ``oomguard_monitor_up``'s label, ``/status``'); ``attr`` its attribute name
    on ``MonitorSettings``. ``optional``: written only when it differs from its defaults, so
    specs written before the section existed read back unchanged. ``stands_alone``: one of the
    monitors of which at least one must stay enabled (an extra watcher is not)."""

    key: str
    settings: type[S]
    description: str
    optional: bool = False
    stands_alone: bool = True
    rules: tuple[CelRule, ...] = ()

    @property
    def attr(self) -> str:
        """``hostMemory`` -> ``host_memory``."""
        return "".join(f"_{c.lower()}" if c.isupper() else c for c in self.key)

    def default(self) -> S:
        return self.settings()
