"""Every kind of monitor in one list. Everything else is derived from it: the node agent's
plan (``modes/node_monitors.py``), the guard's config and its ``--monitors`` names,
``build_monitors``, the running names in ``/status`` and the ``oomguard_monitor_up`` label.

Adding a kind of monitor touches:

1. ``monitor/triggers/kinds/<name>.py``: one ``MonitorKind`` class (trigger kind, when the
   node agent and the guard run it and with what config, how it is built; a new ``Monitor``
   or ``UsageSource`` beside it only if no existing one fits);
2. ``src/oomguard/wire/monitor_sections/<name>.py``: its spec section (key, knobs, defaults,
   ranges, checks, CRD description). The operator reads specs too and may import only
   ``oomguard.wire`` (``tests/test_layer_order.py``), so this half cannot live in (1);
3. one line each in ``MONITOR_KINDS`` below and ``MONITOR_SECTIONS``
   (``wire/monitor_settings.py``), in the same order;
4. ``scripts/generate-monitor-schema``: rewrites the generated blocks of both CRDs, the
   chart's values schema and the monitor table in docs/node-agent.md.

``tests/wire/test_monitor_sections.py`` fails, naming the command, while (4) is out of date.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from oomguard.monitor.kernel.cgroupfs import Cgroup
from oomguard.monitor.triggers.kinds.event import EVENT
from oomguard.monitor.triggers.kinds.host_memory import HOST_MEMORY
from oomguard.monitor.triggers.kinds.pressure import PRESSURE
from oomguard.monitor.triggers.kinds.threshold import THRESHOLD
from oomguard.monitor.triggers.monitor_config import MonitorConfig
from oomguard.monitor.triggers.monitor_kind import GuardFacts, MonitorKind
from oomguard.monitor.triggers.trigger import Monitor

Kinds = tuple[MonitorKind[Any, Any], ...]

MONITOR_KINDS: Kinds = (EVENT, THRESHOLD, PRESSURE, HOST_MEMORY)


def monitor_names(kinds: Kinds = MONITOR_KINDS) -> list[str]:
    """Every kind's name: the closed label set of ``oomguard_monitor_up``."""
    return [kind.name for kind in kinds]


def wanted_names(config: MonitorConfig, kinds: Kinds = MONITOR_KINDS) -> list[str]:
    """The names of the monitors ``config`` asks for, in registry order."""
    return [kind.name for kind in kinds if kind in config]


def build_monitors(
    cgroup: Cgroup, config: MonitorConfig, kinds: Kinds = MONITOR_KINDS
) -> list[Monitor]:
    """The monitors ``config`` asks for, all watching ``cgroup``."""
    unknown = set(config.runs) - set(monitor_names(kinds))
    if unknown:
        raise ValueError(f"no such monitor: {', '.join(sorted(unknown))}")
    monitors = [kind.build(cgroup, config.runs[kind.name]) for kind in kinds if kind in config]
    if not monitors:
        names = ", ".join(monitor_names(kinds))
        raise ValueError(f"no monitor enabled: turn on at least one of {names}")
    return monitors


def guard_names(kinds: Kinds = MONITOR_KINDS) -> tuple[str, ...]:
    """The kinds ``oomguard guard --monitors`` offers."""
    return tuple(kind.name for kind in kinds if kind.in_guard)


def guard_config(facts: GuardFacts, kinds: Kinds = MONITOR_KINDS) -> MonitorConfig:
    """What the process guard runs: each kind's own guard rule."""
    return MonitorConfig.of(_runs(kinds, facts))


def _runs(kinds: Iterable[MonitorKind[Any, Any]], facts: GuardFacts) -> Iterable[Any]:
    for kind in kinds:
        config = kind.guard_config(facts)
        if config is not None:
            yield kind.run(config)


def polled(config: MonitorConfig, kinds: Kinds = MONITOR_KINDS) -> bool:
    """Whether a monitor in ``config`` is checked on the node agent's tick."""
    return any(kind.polls for kind in kinds if kind in config)
