"""The ``monitor`` label of ``oomguard_monitor_up``: a closed set, one value per kind of
monitor, taken from the registry so a new kind has its series without an edit here."""

from __future__ import annotations

from enum import StrEnum

from oomguard.monitor.triggers.monitor_registry import MONITOR_KINDS, Kinds


def _constant(name: str) -> str:
    """``hostMemory`` -> ``HOST_MEMORY``: a kind's name as an enum member's."""
    return "".join(f"_{c}" if c.isupper() else c.upper() for c in name)


def monitor_name_enum(kinds: Kinds = MONITOR_KINDS) -> type[StrEnum]:
    """The label's values: one member per kind, in registry order."""
    members = [(_constant(kind.name), kind.name) for kind in kinds]
    # mypy reads the functional API only with literal members, and these are the registry's
    enum: type[StrEnum] = StrEnum("MonitorName", members)  # type: ignore[misc]
    return enum


MonitorName = monitor_name_enum()
"""E.g. ``MonitorName.HOST_MEMORY == "hostMemory"``."""
