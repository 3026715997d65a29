"""What the demo prints: per-worker bars, the summary table, the verdict, the JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

from demo.results import RunResults
from demo.summary import Fate, RunSummary, Verdict, fates

BAR_WIDTH = 20
FULL, EMPTY = "█", "░"


class Run(Enum):
    KERNEL = "kernel_alone"
    GUARDED = "with_oomguard"

    @property
    def title(self) -> str:
        return "kernel alone" if self is Run.KERNEL else "with oomguard"


def bar(progress: int, planned: int, width: int = BAR_WIDTH) -> str:
    """``████░░░░``: the share of planned units done, never more than full."""
    if planned <= 0:  # no plan known: nothing to draw against
        return EMPTY * width
    filled = round(min(max(progress, 0), planned) / planned * width)
    if progress > 0 and filled == 0:
        filled = 1  # a worker that did anything shows it
    return FULL * filled + EMPTY * (width - filled)


def fate_label(f: Fate) -> str:
    return "done" if f is Fate.FINISHED else f.value


def worker_bars(run: RunResults) -> list[str]:
    """One line per worker, oldest first: number, bar, units, how it ended."""
    how = fates(run)
    width = len(str(max((w.planned for w in run.workers), default=0)))
    return [
        f"  {w.index:>2} {bar(w.progress, w.planned)} "
        f"{w.progress:>{width}}/{w.planned:<{width}} {fate_label(how[w.index])}"
        for w in sorted(run.workers, key=lambda w: w.index)
    ]


def index_ranges(indices: Sequence[int]) -> str:
    """``[0, 1, 2, 3, 5]`` -> ``0-3, 5``."""
    spans: list[tuple[int, int]] = []
    for i in sorted(indices):
        if spans and i == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], i)
        else:
            spans.append((i, i))
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _finished(s: RunSummary) -> str:
    if not s.finished:
        return f"0 of {s.workers}"
    return f"{len(s.finished)} of {s.workers} ({index_ranges(s.finished)})"


def _lost(s: RunSummary) -> str:
    if not s.lost:
        return "-"
    by_fate: dict[Fate, list[int]] = {}
    for index, f in s.lost:
        by_fate.setdefault(f, []).append(index)
    parts = [f"{index_ranges(ix)} {f.value}" for f, ix in by_fate.items()]
    return f"{len(s.lost)}: " + "; ".join(parts)


def _kept(s: RunSummary) -> str:
    percent = s.kept_percent
    if percent is None:
        return "-"
    return f"{percent:.0f} % ({s.work_kept} of {s.work_kept + s.work_lost} units)"


def _over(s: RunSummary) -> str:
    return "-" if s.seconds_over_soft_limit is None else f"{s.seconds_over_soft_limit:.2f} s"


def _latency(s: RunSummary) -> str:
    if s.detection_to_signal_ms is None:
        return "-"
    low, high = (round(x) for x in s.detection_to_signal_ms)
    return f"{low} ms" if low == high else f"{low}-{high} ms"


ROWS = (
    ("kernel OOM kills", lambda s: str(s.oom_kills)),
    ("workers finished", _finished),
    ("workers lost", _lost),
    ("work kept", _kept),
    ("time over soft limit", _over),
    ("detection -> signal", _latency),
)


def verdict_line(v: Verdict, kernel: RunSummary, guarded: RunSummary) -> str:
    k, g = kernel.kept_percent, guarded.kept_percent
    if v is Verdict.UNKNOWN or k is None or g is None:
        return f"verdict: {v.value}"
    return (
        f"verdict: {v.value}: {g:.0f} % with oomguard vs {k:.0f} % with the kernel alone "
        f"({guarded.oom_kills} vs {kernel.oom_kills} kernel OOM kills)"
    )


def summary_text(
    summaries: Mapping[Run, RunSummary], soft_limit: str, logs: str, verdict: Verdict
) -> str:
    """The table, then where the logs are, then the verdict: the last thing on the screen."""
    kernel, guarded = summaries[Run.KERNEL], summaries[Run.GUARDED]
    rows = [("", Run.KERNEL.title, Run.GUARDED.title)]
    rows += [(label, fn(kernel), fn(guarded)) for label, fn in ROWS]
    first = max(len(r[0]) for r in rows) + 2
    second = max(len(r[1]) for r in rows) + 2
    lines = [
        "",
        f"=== summary (workers by age: 0 = oldest; soft limit = memory.high {soft_limit}) ===",
    ]
    lines += [f"{a:<{first}}{b:<{second}}{c}".rstrip() for a, b, c in rows]
    lines += [f"logs: {logs}", verdict_line(verdict, kernel, guarded)]
    return "\n".join(lines)


def run_json(s: RunSummary, run: RunResults) -> dict[str, Any]:
    how = fates(run)
    return {
        "kernel_oom_kills": s.oom_kills,
        "workers": s.workers,
        "workers_finished": list(s.finished),
        "workers_lost": [{"worker": i, "how": f.value} for i, f in s.lost],
        "work_kept_units": s.work_kept,
        "work_lost_units": s.work_lost,
        "work_kept_percent": None if s.kept_percent is None else round(s.kept_percent, 1),
        "seconds_over_soft_limit": (
            None if s.seconds_over_soft_limit is None else round(s.seconds_over_soft_limit, 3)
        ),
        "peak_bytes": s.peak_bytes,
        "detection_to_signal_ms": (
            None
            if s.detection_to_signal_ms is None
            else {"min": s.detection_to_signal_ms[0], "max": s.detection_to_signal_ms[1]}
        ),
        "per_worker": [
            {
                "worker": w.index,
                "progress": w.progress,
                "planned": w.planned,
                "how": how[w.index].value,
            }
            for w in sorted(run.workers, key=lambda w: w.index)
        ],
    }


def summary_json(
    scenario: str,
    summaries: Mapping[Run, RunSummary],
    runs: Mapping[Run, RunResults],
    logs: Mapping[Run, str],
    verdict: Verdict,
) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "runs": {r.value: {**run_json(summaries[r], runs[r]), "log": logs[r]} for r in Run},
        "verdict": verdict.name.lower(),
        "verdict_text": verdict_line(verdict, summaries[Run.KERNEL], summaries[Run.GUARDED]),
    }
