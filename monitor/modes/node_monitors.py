"""Which monitors the node agent runs, from its settings and what the kernel allows (pure).

Each kind says in its own file (``triggers/kinds/``) with what config it runs and when it
cannot run here. What is left here are the rules across kinds, read from each kind's roles:

- a kind runs when its section is enabled;
- without memory.high (dry run, or a kernel older than 5.9) the kind that
  ``guards_without_memory_high`` (threshold) runs even when disabled: it is the guard there;
  a kind that ``stands_in_for`` another (pressure for event) runs when that one was asked;
- when no kind that stands alone runs (only "pressure alone, no PSI" ends there: the settings
  keep one enabled), the ``last_resort`` kind (threshold) runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oomguard.monitor.triggers.kinds.event import KUBEPODS_EVENT_COUNTERS
from oomguard.monitor.triggers.monitor_config import MonitorConfig
from oomguard.monitor.triggers.monitor_kind import KindRun, MonitorKind, NodeFacts, Off
from oomguard.monitor.triggers.monitor_registry import MONITOR_KINDS, Kinds
from oomguard.wire.node_settings import MonitorSettings

__all__ = ["KUBEPODS_EVENT_COUNTERS", "NodeMonitorPlan", "node_monitor_plan"]


@dataclass(frozen=True)
class NodeMonitorPlan:
    """The monitor configuration and the notes that explain any deviation from the settings."""

    config: MonitorConfig
    notes: tuple[str, ...] = ()


def node_monitor_plan(
    settings: MonitorSettings,
    target_bytes: int,
    memory_high_set: bool,
    pressure_available: bool = True,
    node_memory_bytes: int = 0,
    kinds: Kinds = MONITOR_KINDS,
) -> NodeMonitorPlan:
    """``node_memory_bytes``: what the host-memory monitor's line is a share of (0: unknown,
    and that monitor does not run)."""
    facts = NodeFacts(target_bytes, memory_high_set, pressure_available, node_memory_bytes)
    asked = {kind.section.key for kind in kinds if kind.settings(settings).enabled}
    notes: list[str] = []
    runs: list[KindRun] = []
    for kind in kinds:
        if not _wanted(kind, asked, memory_high_set, notes):
            continue
        config = kind.node_config(kind.settings(settings), facts)
        if isinstance(config, Off):
            notes.extend([config.note] if config.note else [])
        else:
            runs.append(kind.run(config))
    running = {run.name for run in runs}
    if not any(kind.section.stands_alone and kind.name in running for kind in kinds):
        last = next(kind for kind in kinds if kind.last_resort)
        notes.append(f"{last.name} monitor on: the only enabled monitor cannot run here")
        config = last.node_config(last.settings(settings), facts)
        assert not isinstance(config, Off), f"the last resort {last.name} must always run"
        runs.append(last.run(config))
    return NodeMonitorPlan(MonitorConfig.of(runs), tuple(notes))


def _wanted(
    kind: MonitorKind[Any, Any], asked: set[str], memory_high_set: bool, notes: list[str]
) -> bool:
    """Whether ``kind`` should run: asked for, or given a role without memory.high."""
    if kind.name in asked or memory_high_set:
        return kind.name in asked
    if kind.guards_without_memory_high:
        notes.append(
            f"{kind.name} monitor on although disabled: it is the guard without memory.high"
        )
        return True
    if kind.stands_in_for is not None and kind.stands_in_for.key in asked:
        notes.append(
            f"{kind.name} monitor on in place of the {kind.stands_in_for.key} monitor"
            " (no memory.high)"
        )
        return True
    return False
