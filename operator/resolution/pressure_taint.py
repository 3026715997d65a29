"""Which nodes carry the taint ``oomguard.io/memory-pressure:NoSchedule``. Pure.

A node is tainted while its agent reports ``MemoryPressure=True`` on the node's
NodeMemoryReserve, and only while that report can be trusted: the agent refreshed its status
within ``heartbeat_seconds`` (it writes at least once a minute; a silent agent is gone or
cut off) and the pressure began less than ``max_age_seconds`` ago (one episode never keeps a
node out of scheduling for longer). Every other taint with our key and effect is removed:
no reserve, no pressure, a silent agent, an old episode, or the taint turned off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from oomguard.wire.memory_pressure import MEMORY_PRESSURE, TAINT_EFFECT, TAINT_KEY
from oomguard.wire.times import parse_rfc3339


class TaintWhy(StrEnum):
    """Why a node should (PRESSURE) or should not carry the taint."""

    PRESSURE = "pressure"
    DISABLED = "disabled"
    NO_RESERVE = "no-reserve"
    NO_PRESSURE = "no-pressure"
    AGENT_SILENT = "agent-silent"
    TOO_OLD = "too-old"


@dataclass(frozen=True)
class TaintRules:
    enabled: bool = True
    heartbeat_seconds: float = 180.0
    max_age_seconds: float = 600.0


@dataclass(frozen=True)
class ReservePressure:
    """What a NodeMemoryReserve's status says about pressure."""

    pressure: bool  # MemoryPressure is True
    since: datetime | None  # the condition's lastTransitionTime
    heartbeat: datetime | None  # status.lastUpdateTime


def reserve_pressure(status: Mapping[str, Any] | None) -> ReservePressure:
    status = status or {}
    found = next(
        (c for c in status.get("conditions") or [] if c.get("type") == MEMORY_PRESSURE), None
    )
    return ReservePressure(
        pressure=found is not None and found.get("status") == "True",
        since=parse_rfc3339(found.get("lastTransitionTime")) if found else None,
        heartbeat=parse_rfc3339(status.get("lastUpdateTime")),
    )


def has_taint(taints: Any) -> bool:
    """Whether a Node's ``spec.taints`` holds ours."""
    return any(_ours(t) for t in taints or [] if isinstance(t, Mapping))


def _ours(taint: Mapping[str, Any]) -> bool:
    return taint.get("key") == TAINT_KEY and taint.get("effect") == TAINT_EFFECT


def with_taint(taints: Any, wanted: bool, now: datetime) -> list[dict[str, Any]]:
    """``spec.taints`` with ours added (stamped ``timeAdded``) or removed; others kept."""
    others = [dict(t) for t in taints or [] if isinstance(t, Mapping) and not _ours(t)]
    if not wanted:
        return others
    present = [dict(t) for t in taints or [] if isinstance(t, Mapping) and _ours(t)]
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return others + (
        present[:1] or [{"key": TAINT_KEY, "effect": TAINT_EFFECT, "timeAdded": stamp}]
    )


def why(pressure: ReservePressure | None, now: datetime, rules: TaintRules) -> TaintWhy:
    if not rules.enabled:
        return TaintWhy.DISABLED
    if pressure is None:
        return TaintWhy.NO_RESERVE
    if not pressure.pressure:
        return TaintWhy.NO_PRESSURE
    if pressure.heartbeat is None or now - pressure.heartbeat > _seconds(rules.heartbeat_seconds):
        return TaintWhy.AGENT_SILENT
    if pressure.since is None or now - pressure.since > _seconds(rules.max_age_seconds):
        return TaintWhy.TOO_OLD
    return TaintWhy.PRESSURE


@dataclass(frozen=True)
class TaintPlan:
    add: tuple[str, ...]
    remove: tuple[tuple[str, TaintWhy], ...]
    recheck_at: datetime | None  # when a taint kept now stops being wanted at the latest


def plan_taints(
    tainted: frozenset[str] | set[str],
    pressures: Mapping[str, ReservePressure],
    now: datetime,
    rules: TaintRules,
) -> TaintPlan:
    """``tainted``: nodes carrying our taint; ``pressures``: every NodeMemoryReserve's."""
    verdicts = {
        name: why(pressures.get(name), now, rules) for name in set(tainted) | set(pressures)
    }
    add = tuple(
        sorted(n for n, w in verdicts.items() if w is TaintWhy.PRESSURE and n not in tainted)
    )
    remove = tuple(
        sorted((n, w) for n, w in verdicts.items() if w is not TaintWhy.PRESSURE and n in tainted)
    )
    deadlines = [
        min(
            p.heartbeat + _seconds(rules.heartbeat_seconds),
            p.since + _seconds(rules.max_age_seconds),
        )
        for n, w in verdicts.items()
        if w is TaintWhy.PRESSURE
        and (p := pressures[n]).heartbeat is not None
        and p.since is not None
    ]
    return TaintPlan(add, remove, min(deadlines) if deadlines else None)


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)
