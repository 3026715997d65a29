"""The performance goals, each a ratio or count computed per repetition, so the page can
show its median, its spread and how many repetitions met it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stormlib.analysis import percentile
from stormlib.spread import spread

Rows = list[dict[str, Any]]
GUARD, POLLER, EARLYOOM, PARENT = "oomguard", "poll-250ms", "earlyoom", "oomguard-parent"
IDLE_GUARD = "oomguard-event-only"


@dataclass(frozen=True)
class Goal:
    figure: str
    goal: str
    value: Callable[[Rows, Rows], float | None]  # (a repetition's runs, its idle window)
    met: Callable[[float], bool]
    show: Callable[[float | None], str]


def _of(rows: Rows, contender: str, *, with_d: bool = False) -> Rows:
    return [r for r in rows if r["contender"] == contender and (with_d or r["scenario"] != "d")]


def _p50(rows: Rows, key: str) -> float | None:
    return percentile([x for r in rows for x in r.get(key) or []], 0.5)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _idle(idle: Rows, contender: str, key: str) -> float | None:
    """Per second of the window; None for a window measured before the guards had settled
    (``settled`` False: start-up, not idling; runs recorded before the flag count as settled)."""
    for i in idle:
        if i["contender"] == contender and i.get(key) is not None:
            return float(i[key]) / i["seconds"] if i.get("settled", True) else None
    return None


def _cpu(rows: Rows, contender: str) -> float | None:
    cpu = [r["cpu_s"] for r in _of(rows, contender, with_d=True) if r["cpu_s"] is not None]
    return sum(cpu) if cpu else None


def _worst_relief_ratio(rows: Rows, _idle_rows: Rows) -> float | None:
    poller = {r["scenario"]: r["relief_s"] for r in _of(rows, POLLER)}
    ratios = [
        r["relief_s"] / poller[r["scenario"]]
        for r in _of(rows, GUARD)
        if r["relief_s"] is not None and poller.get(r["scenario"])
    ]
    return max(ratios) if ratios else None


def _parent_kept(rows: Rows, _idle_rows: Rows) -> float | None:
    parent = [r for r in rows if r["contender"] == PARENT]
    if not parent or any(r["oom_kills"] for r in parent):
        return 0.0 if parent else None  # an OOM kill fails the goal whatever was kept
    kept = [r["preserved"] for r in parent if r["preserved"] is not None]
    return 100 * sum(kept) / len(kept) if kept else None


def _times(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


def _plain(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


GOALS: tuple[Goal, ...] = (
    Goal(
        "kernel OOM kills under oomguard (all but d)",
        "0",
        lambda rows, _i: float(sum(r["oom_kills"] for r in _of(rows, GUARD))),
        lambda v: v == 0,
        lambda v: "-" if v is None else f"{v:.0f}",
    ),
    Goal(
        "idle wake-ups per second, event monitor only",
        "0",
        lambda _r, idle: _idle(idle, IDLE_GUARD, "wakeups"),
        lambda v: v < 0.05,
        _plain,
    ),
    Goal(
        "idle CPU, event monitor only / earlyoom",
        "<= 1x",
        lambda _r, idle: _ratio(
            _idle(idle, IDLE_GUARD, "cpu_seconds"), _idle(idle, EARLYOOM, "cpu_seconds")
        ),
        lambda v: v <= 1,
        _times,
    ),
    Goal(
        "storm CPU, all runs: oomguard / earlyoom",
        "<= 3x",
        lambda rows, _i: _ratio(_cpu(rows, GUARD), _cpu(rows, EARLYOOM)),
        lambda v: v <= 3,
        _times,
    ),
    Goal(
        "breach -> first signal p50: oomguard / 250 ms poller",
        "<= 0.2x",
        lambda rows, _i: _ratio(
            _p50(_of(rows, GUARD), "breach_to_signal"), _p50(_of(rows, POLLER), "breach_to_signal")
        ),
        lambda v: v <= 0.2,
        _times,
    ),
    Goal(
        "oomguard's own detection -> signal p50",
        "< 20 ms",
        lambda rows, _i: _p50(_of(rows, GUARD), "guard_signal"),
        lambda v: v < 0.020,
        _ms,
    ),
    Goal(
        "breach -> victim stopped p50: oomguard / 250 ms poller",
        "<= 0.25x",
        lambda rows, _i: _ratio(
            _p50(_of(rows, GUARD), "reactions"), _p50(_of(rows, POLLER), "reactions")
        ),
        lambda v: v <= 0.25,
        _times,
    ),
    Goal(
        "breach -> relief, worst scenario: oomguard / 250 ms poller",
        "<= 1x in every scenario",
        _worst_relief_ratio,
        lambda v: v <= 1,
        _times,
    ),
    Goal(
        "(d) work kept by the parent guard, % (0 if any kernel OOM kill)",
        ">= 80",
        _parent_kept,
        lambda v: v >= 80,
        _plain,
    ),
)


def goal_lines(rows: Rows, idle: Rows) -> list[str]:
    """The goals table: each figure's median [min-max] and how many repetitions met it."""
    reps = sorted({r.get("repetition", 0) for r in rows})
    lines = [
        "## Goals (issue 13), per repetition",
        "",
        "Each figure is computed within one repetition (its runs and its idle window), then "
        "summarised as median [min-max] over the repetitions.",
        "",
        "| figure | goal | median [min-max] | met in |",
        "|---|---|---|---|",
    ]
    for goal in GOALS:
        values = [
            goal.value(
                [r for r in rows if r.get("repetition", 0) == k],
                [i for i in idle if i.get("repetition", 0) == k],
            )
            for k in reps
        ]
        met = sum(1 for v in values if v is not None and goal.met(v))
        known = sum(1 for v in values if v is not None)
        lines.append(
            f"| {goal.figure} | {goal.goal} | {spread(values, goal.show)} | {met} of {known} |"
        )
    return lines
