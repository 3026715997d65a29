"""Repetitions to one cell: the median, and the min-max spread beside it."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def spread(values: Iterable[float | None], show: Callable[[float | None], str]) -> str:
    """``median [min-max]`` over the repetitions that have a value; one value alone."""
    present = sorted(v for v in values if v is not None)
    if not present:
        return "-"
    middle = show(statistics.median(present))
    if len(present) == 1 or present[0] == present[-1]:
        return middle
    return f"{middle} [{show(present[0])}-{show(present[-1])}]"


def by_repetition(rows: Sequence[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """The analysed runs of each repetition (a run without one is repetition 0)."""
    out: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r.get("repetition", 0), []).append(r)
    return out


def per_repetition(
    rows: Sequence[dict[str, Any]], figure: Callable[[list[dict[str, Any]]], T]
) -> list[T]:
    """``figure`` of each repetition's runs, in repetition order."""
    grouped = by_repetition(rows)
    return [figure(grouped[k]) for k in sorted(grouped)]
