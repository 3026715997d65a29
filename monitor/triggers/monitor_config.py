"""Which monitors a loop runs and their knobs, as a mode works them out from its settings:
one runtime config per kind, keyed by the kind's name (so a new kind needs no field here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from oomguard.monitor.triggers.monitor_kind import KindRun, MonitorKind

C = TypeVar("C")


class UsageScope(Enum):
    CGROUP = "cgroup"  # working set of the guarded cgroup
    HOST = "host"  # MemTotal - MemAvailable of the whole machine


@dataclass(frozen=True)
class ThresholdConfig:
    """A polled usage figure against a line (the threshold and host-memory kinds)."""

    limit_bytes: int
    interval_s: float = 0.1
    scope: UsageScope = UsageScope.CGROUP


@dataclass(frozen=True, init=False)
class MonitorConfig:
    """Which monitors to run, each with its config; built from ``kind.run(config)`` tags.
    Compared as a mapping (the order kinds run in is the registry's)."""

    runs: Mapping[str, Any]

    def __init__(self, *runs: KindRun) -> None:
        object.__setattr__(self, "runs", {run.name: run.config for run in runs})

    @classmethod
    def of(cls, runs: Iterable[KindRun]) -> MonitorConfig:
        return cls(*runs)

    def get(self, kind: MonitorKind[Any, C]) -> C | None:
        """``kind``'s config, None when it does not run."""
        config: C | None = self.runs.get(kind.name)
        return config

    def __contains__(self, kind: MonitorKind[Any, Any]) -> bool:
        return kind.name in self.runs

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.runs.items(), key=lambda item: item[0])))
