"""The figures a run is judged by, computed from its raw results alone.

Work is counted in the workers' progress units (allocation steps and 0.1 s of holding, as
in bench/storm.py): a finished worker's units are *kept*, the units a worker had done when
it was stopped or killed are *lost*, and the share kept is ``kept / (kept + lost)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from demo.results import RunResults, Worker


class Fate(Enum):
    FINISHED = "finished"
    STOPPED_BY_OOMGUARD = "stopped by oomguard"
    KILLED_BY_KERNEL = "OOM-killed by the kernel"
    ENDED_OTHERWISE = "ended otherwise"


def fate(worker: Worker, signalled: frozenset[int]) -> Fate:
    """How a worker ended: the guard's victims are its own; any other SIGKILL in a cgroup
    with memory.max is the kernel's OOM killer (nothing else in the demo sends one)."""
    if worker.outcome == "finished":
        return Fate.FINISHED
    if worker.pid in signalled:
        return Fate.STOPPED_BY_OOMGUARD
    if worker.outcome == "killed by SIGKILL":
        return Fate.KILLED_BY_KERNEL
    return Fate.ENDED_OTHERWISE


@dataclass(frozen=True)
class RunSummary:
    oom_kills: int
    workers: int
    finished: tuple[int, ...]  # worker numbers, 0 = oldest
    lost: tuple[tuple[int, Fate], ...]
    work_kept: int  # progress units
    work_lost: int
    seconds_over_soft_limit: float | None  # None: no samples
    peak_bytes: int | None
    detection_to_signal_ms: tuple[float, float] | None  # (fastest, slowest)
    victims_signalled: int

    @property
    def kept_percent(self) -> float | None:
        total = self.work_kept + self.work_lost
        return 100.0 * self.work_kept / total if total else None


def signalled_pids(run: RunResults) -> frozenset[int]:
    return frozenset(v.pid for v in run.victims if v.signal)


def fates(run: RunResults) -> dict[int, Fate]:
    """Worker number -> how it ended."""
    signalled = signalled_pids(run)
    return {w.index: fate(w, signalled) for w in run.workers}


def seconds_over(samples: Sequence[tuple[float, int]], limit: int) -> float | None:
    """Time usage spent above ``limit``: each sample holds until the next one."""
    if not samples:
        return None
    ordered = sorted(samples)
    return sum(
        later[0] - earlier[0]
        for earlier, later in itertools.pairwise(ordered)
        if earlier[1] > limit
    )


def summarize(run: RunResults) -> RunSummary:
    how = fates(run)
    by_index = {w.index: w for w in run.workers}
    finished = tuple(sorted(i for i, f in how.items() if f is Fate.FINISHED))
    lost = tuple(sorted((i, f) for i, f in how.items() if f is not Fate.FINISHED))
    latencies = sorted(
        v.detection_to_signal * 1000.0
        for v in run.victims
        if v.signal and v.detection_to_signal is not None
    )
    return RunSummary(
        oom_kills=run.oom_kills,
        workers=len(run.workers),
        finished=finished,
        lost=lost,
        work_kept=sum(by_index[i].planned for i in finished),
        work_lost=sum(by_index[i].progress for i, _ in lost),
        seconds_over_soft_limit=seconds_over(run.samples, run.memory_high_bytes),
        peak_bytes=max((b for _, b in run.samples), default=None),
        detection_to_signal_ms=(latencies[0], latencies[-1]) if latencies else None,
        victims_signalled=len(signalled_pids(run)),
    )


class Verdict(Enum):
    GUARD_KEPT_MORE = "oomguard kept more work"
    KERNEL_KEPT_MORE = "the kernel alone kept more work"
    SAME = "both kept the same share of work"
    UNKNOWN = "no work was done"


def verdict(kernel: RunSummary, guarded: RunSummary, tolerance: float = 0.5) -> Verdict:
    """Which run kept the larger share of its work (within ``tolerance`` points: the same)."""
    a, b = kernel.kept_percent, guarded.kept_percent
    if a is None or b is None:
        return Verdict.UNKNOWN
    if abs(a - b) <= tolerance:
        return Verdict.SAME
    return Verdict.GUARD_KEPT_MORE if b > a else Verdict.KERNEL_KEPT_MORE
