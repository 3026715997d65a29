"""From one run's raw samples to its figures: episodes over the soft limit, reactions,
work kept and lost, the guard's own latencies, CPU and wake-ups."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any


def percentile(data: Sequence[float], q: float) -> float | None:
    if not data:
        return None
    s = sorted(data)
    return s[min(len(s) - 1, max(0, round(q * len(s)) - 1))]


def episodes(samples: Sequence[tuple[float, int]], high: int, hysteresis: int) -> list[list[float]]:
    """[start, end] spans with usage above ``high``; one ends at ``high - hysteresis``."""
    spans: list[list[float]] = []
    open_at: float | None = None
    for t, usage in samples:
        if open_at is None and usage > high:
            open_at = t
        elif open_at is not None and usage <= high - hysteresis:
            spans.append([open_at, t])
            open_at = None
    if open_at is not None and samples:
        spans.append([open_at, samples[-1][0]])
    return spans


def analyse(run: dict[str, Any], settings: dict[str, int]) -> dict[str, Any]:
    high = settings["memory_high"]
    workers = (run.get("pool") or {}).get("workers") or []
    done = [w for w in workers if w.get("outcome") == "finished"]
    killed = [w for w in workers if w.get("outcome") not in (None, "finished")]
    kept = sum(w["planned"] for w in done)
    lost = sum(w["progress"] for w in killed)
    spans = episodes(run["samples"], high, high // 20)
    deaths = sorted(
        (w["term_at"] or w["ended"]) for w in killed if (w.get("term_at") or w.get("ended"))
    )
    reactions = []
    for start, end in spans:
        first = next((d for d in deaths if start <= d <= end + 0.05), None)
        if first is not None:
            reactions.append(first - start)
    signals = signal_times(run.get("guard_report") or {})
    to_signal = []
    for start, end in spans:
        # the guard may signal before the 10 ms sampler sees the breach: that counts as 0
        first_signal = next((t for t in signals if start - 0.02 <= t <= end + 0.05), None)
        if first_signal is not None:
            to_signal.append(max(0.0, first_signal - start))
    relief = (spans[0][1] - spans[0][0]) if spans else None
    busy = [(t, c) for t, c, b in run["guard_cpu"] if b]
    woken = [w for _, w, b in run.get("guard_wakeups", []) if b]
    cpu = (busy[-1][1] - busy[0][1]) if len(busy) > 1 else None
    over = sum(e - s for s, e in spans)
    peak = max((u for _, u in run["samples"]), default=0)
    oldest_lost = None
    if workers:
        order = sorted(range(len(workers)), key=lambda i: workers[i].get("started", 0))
        oldest = order[: max(1, len(order) // 2)]
        oldest_lost = sum(1 for i in oldest if workers[i].get("outcome") != "finished")
    own = [
        v["detection_to_signal_seconds"]
        for v in ((run.get("guard_report") or {}).get("victims") or [])
        if v.get("detection_to_signal_seconds") is not None
    ]
    return {
        "guard_signal": own,
        "scenario": run["scenario"],
        "contender": run["contender"],
        "repetition": run.get("repetition", 0),
        "oom_kills": run["memory_events"].get("oom_kill", 0),
        "vmstat_oom_kills": run["vmstat_oom_kill"],
        "workers": len(workers),
        "victims": len(killed),
        "victims_by": _count(w["outcome"] for w in killed),
        "oldest_half_lost": oldest_lost,
        "work_kept": kept,
        "work_lost": lost,
        "preserved": kept / (kept + lost) if kept + lost else None,
        "relief_s": relief,
        "over_high_s": over,
        "episodes": len(spans),
        "reactions": reactions,
        "breach_to_signal": to_signal,
        "peak": peak,
        "cpu_s": cpu,
        "wakeups": (woken[-1] - woken[0]) if len(woken) > 1 else None,
        "guard_peak_rss": run.get("guard_peak_rss") or None,
        "trace": [
            d["trace_seconds"]
            for d in ((run.get("guard_report") or {}).get("decisions") or [])
            if d.get("trace_seconds")
        ],
        "timed_out": run["timed_out"],
        "pool_missing": run.get("pool") is None,
    }


def _count(items: Iterator[str] | Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


def signal_times(report: dict[str, Any]) -> list[float]:
    """When the guard sent each victim its first signal, on the VM's monotonic clock (the
    sampler's), from its report; empty without a report or its zero."""
    zero = report.get("started_at_monotonic_seconds")
    if zero is None:
        return []
    return sorted(
        zero + v["detected_at_seconds"] + v["detection_to_signal_seconds"]
        for v in report.get("victims") or []
        if v.get("detection_to_signal_seconds") is not None
    )
