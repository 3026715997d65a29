"""The table of monitors in docs/node-agent.md, derived from the registry (pure): each kind's
name, the trigger it sends, its knobs with their allowed ranges, its defaults and what it
watches."""

from __future__ import annotations

from typing import Any

from oomguard.monitor.triggers.monitor_registry import MONITOR_KINDS, Kinds
from oomguard.wire.spec_section import SpecField

BEGIN = "<!-- generated from the monitor registry by scripts/generate-monitor-schema -->"
END = "<!-- end of the generated monitor table -->"


def _knob(f: SpecField) -> str:
    low, high = f.minimum, f.maximum
    if low is not None and high is not None:
        return f"`{f.spec}` ({low} to {high})"
    if low is not None or high is not None:
        return f"`{f.spec}` ({'≥ ' + str(low) if low is not None else '≤ ' + str(high)})"
    return f"`{f.spec}`"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def monitor_table(kinds: Kinds = MONITOR_KINDS) -> list[str]:
    """The table's lines (markdown)."""
    lines = [
        "| monitor | trigger | settings (allowed range) | defaults | watches |",
        "| --- | --- | --- | --- | --- |",
    ]
    for kind in kinds:
        section, default = kind.section, kind.section.default()
        knobs = ", ".join(_knob(f) for f in section.settings.FIELDS)
        defaults = ", ".join(_value(getattr(default, f.attr)) for f in section.settings.FIELDS)
        lines.append(
            f"| `{kind.name}` | {kind.trigger.value} | {knobs} | {defaults} | "
            f"{section.description} |"
        )
    return lines
