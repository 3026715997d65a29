"""docs/bench/storm.md and storm.png from the analysed runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from stormlib.analysis import analyse, percentile
from stormlib.goals import goal_lines
from stormlib.plan import LABELS, SCENARIOS, SHORT, MiB
from stormlib.spread import median, per_repetition, spread


def _fmt(value: float | None, spec: str = ".2f", unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _n(value: float | None) -> str:
    return _fmt(value, ".0f")


def _pct(value: float | None) -> str:
    return _fmt(value, ".0f", " %")


def render(data: dict[str, Any], out_dir: Path, command: str, host: dict[str, Any]) -> None:
    settings = data["settings"]
    rows = [analyse(r, settings) for r in data["runs"]]
    contenders = list(dict.fromkeys(r["contender"] for r in rows))
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    info = data["info"]
    high_mib, max_mib = settings["memory_high"] // MiB, settings["memory_max"] // MiB
    lines = [
        "# Storm benchmark: oomguard, a polling guard, earlyoom and the kernel alone",
        "",
        "Produced by (on the host; it boots one real-kernel VM and runs everything inside):",
        "",
        "```",
        command,
        "```",
        "",
        f"- Kernel {info['kernel']} under qemu TCG (software emulation), {info['cpus']} vCPUs, "
        f"{info['mem_total'] // MiB} MiB RAM, no swap; {info.get('earlyoom', 'earlyoom')}.",
        f"- Every scenario runs in a fresh cgroup with memory.max = {max_mib} MiB. The common "
        f"soft limit is {high_mib} MiB: oomguard's `--memory-high`, the poller's threshold, and "
        "earlyoom's `-M` (MemAvailable at start minus that much).",
        f"- Host load average (2 cores, shared with other work): {host.get('load_before')} before, "
        f"{host.get('load_after')} after; in the VM: {' '.join(info['loadavg_start'])} -> "
        f"{' '.join(info['loadavg_end'])}. Wall time {host.get('wall_seconds', 0):.0f} s "
        f"(boot included). Timings are noisy and emulation is ~10-30x slower than hardware: "
        "compare contenders, not absolute figures.",
        "",
    ]
    for failure in info.get("failed_runs") or []:
        lines.append(
            f"- **Run {failure['run']} of repetition {failure['repetition']} failed** and is "
            f"missing from the tables: {failure['error']}"
        )
    if info.get("failed_runs"):
        lines.append("")
    reps = len({r.get("repetition", 0) for r in rows})
    if reps > 1:
        lines += [
            f"Every figure is the median over {reps} repetitions, with [min-max] beside it "
            "when they differ; the repetitions ran one after the other in the same VM, each "
            "through every scenario and contender and then its idle window.",
            "",
        ]
    lines += goal_lines(rows, data["idle"])
    lines += [""]
    lines += _headline(rows, contenders, scenarios)
    lines += ["", "## Per scenario", ""]
    lines += [
        "| scenario | contender | kernel OOM kills | victims (how) | oldest half lost | "
        "work preserved | breach -> relief (s) | time over soft limit (s) | "
        "breach -> victim stopped p50 (ms) | peak (MiB) | guard CPU (s) | guard wake-ups | "
        "guard peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (scenario, contender), runs in _cells(rows).items():
        lines.append(_scenario_row(scenario, contender, runs))
    lines += ["", "Scenarios:", ""]
    lines += [f"- **{k}**: {v}" for k, v in SCENARIOS.items() if k in scenarios]
    lines += ["", "## Idle cost", ""]
    if data["idle"]:
        lines += [
            f"Each guard on its own idle guarded cgroup (a `sleep`), all at once, measured over "
            f"{data['idle'][0]['seconds']:.0f} s once start-up was over (CPU from /proc/PID/stat "
            "utime+stime, RSS from /proc/PID/status; under emulation, so CPU is inflated: "
            "the threshold monitor polls memory.current and memory.stat every 0.1 s, or 0.25 s). "
            "Wake-ups: voluntary context switches summed over every thread "
            "(/proc/PID/task/*/status), i.e. how often a thread went back to sleep.",
            "",
            "| guard | CPU over the window (s) | CPU % of one core | wake-ups | wake-ups/s | "
            "RSS (MiB) | peak RSS (MiB) |",
            "|---|---|---|---|---|---|---|",
        ]
        for contender, windows in _idle_cells(data["idle"]).items():
            lines.append(_idle_row(contender, windows))
        lines += unsettled_note(data["idle"])
    lines += _trace(rows)
    lines += ["", *EXPLANATION.strip("\n").splitlines()]
    lines += ["", "How each figure is measured: see `bench/README.md`.", ""]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "storm.md").write_text("\n".join(lines))
    chart(rows, contenders, scenarios, out_dir / "storm.png", settings)


EXPLANATION = """
## Reading the numbers

**Why (d) defeats a guard on the workers' own cgroup.** A shmem/tmpfs page is charged to the
memory cgroup of the task that first touches it, and stays charged there until it is freed,
whoever maps it later. In (d) the files are written by a data owner in a *sibling* cgroup, so
the guarded cgroup's `memory.current` and `memory.events` only see the workers' private 8 MiB
each: memory.high is never crossed, the event monitor never fires, and a threshold on that
cgroup's working set never trips. The limit that is hit is the parent's (the "node"), and the
kernel OOM killer picks the readers (mapped shmem counts in their RSS); killing them does not
even free the files, so it kills again until the data owner goes too. What catches it:

- guarding the cgroup that holds both the workers and the owner (here the parent: `oomguard
  guard --cgroup <parent>`, in Kubernetes node mode `kubepods`), so memory.high and
  memory.events see the shmem; or
- a threshold on host memory (`MemTotal - MemAvailable`, the threshold monitor's host scope in
  node mode), which is what earlyoom watches: shmem is not "available";
- and a graceful stop: a reader that deletes its file on SIGTERM gives the memory back; the
  kernel's SIGKILL cannot.

**Throttling buys time, and delays a SIGTERM handler.** With memory.high set below memory.max
the allocating process is throttled (reclaim, then a penalty sleep of up to 2 s per return to
user space) while oomguard picks and signals the newest process. That sleep is
`schedule_timeout_killable`: only a fatal signal ends it early, so a victim with a SIGTERM
handler (the workers here clean up their shared files) runs it only after the sleep. Usage
stays at memory.high meanwhile, far from memory.max, so it costs time over the soft limit,
not a kernel OOM kill. `--grace` bounds the wait before SIGKILL.

**earlyoom** acts on the machine's MemAvailable, so it needs a VM sized (or an `-M` chosen) for
one workload; it then reacts quickly, but kills the process with the highest `oom_score`, i.e.
the biggest, which in a staggered pool is an old worker: more work lost than newest-first.
"""


def _headline(rows: list[dict[str, Any]], contenders: list[str], scenarios: list[str]) -> list[str]:
    """Per contender, each figure within a repetition, then its median [min-max]."""
    lines = [
        "## Headline",
        "",
        "| contender | kernel OOM kills (all but d) | kernel OOM kills (d) | victims | "
        "work preserved (median of scenarios) | breach -> first signal p50 / max (ms, all but d) | "
        "breach -> victim stopped p50 / p95 / max (ms, all but d) | "
        "oomguard's own detection -> signal p50 / max (ms, all but d) | "
        "guard CPU, all runs (s) | guard wake-ups, all runs | guard peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in contenders:
        lines.append(_headline_row(c, [r for r in rows if r["contender"] == c]))
    return lines


def _headline_row(c: str, mine: list[dict[str, Any]]) -> str:
    has_d = any(r["scenario"] == "d" for r in mine)
    only_d = all(r["scenario"] == "d" for r in mine)

    def each(figure: Callable[[list[dict[str, Any]]], float | None]) -> list[float | None]:
        return per_repetition(mine, figure)

    def pooled(key: str, rep: list[dict[str, Any]]) -> list[float]:
        return [x for r in rep if r["scenario"] != "d" for x in r.get(key) or []]

    def total(key: str, rep: list[dict[str, Any]]) -> float | None:
        values = [r[key] for r in rep if r.get(key) is not None]
        return sum(values) if values else None

    def pooled_rss(rep: list[dict[str, Any]]) -> list[float]:
        return [r["guard_peak_rss"] for r in rep if r.get("guard_peak_rss")]

    def p(key: str, q: float) -> str:
        return spread(each(lambda rep: percentile(pooled(key, rep), q)), _ms)

    def top(key: str) -> str:
        return spread(each(lambda rep: max(pooled(key, rep), default=None)), _ms)

    main = each(lambda rep: sum(r["oom_kills"] for r in rep if r["scenario"] != "d"))
    d = each(lambda rep: sum(r["oom_kills"] for r in rep if r["scenario"] == "d"))
    kept = each(lambda rep: median(100 * r["preserved"] for r in rep if r["preserved"] is not None))
    return (
        f"| {LABELS.get(c, c)} | {'-' if only_d else spread(main, _n)} | "
        f"{spread(d, _n) if has_d else '-'} | "
        f"{spread(each(lambda rep: total('victims', rep)), _n)} | "
        f"{spread(kept, _pct)} | "
        f"{p('breach_to_signal', 0.5)} / {top('breach_to_signal')} | "
        f"{p('reactions', 0.5)} / {p('reactions', 0.95)} / {top('reactions')} | "
        f"{p('guard_signal', 0.5)} / {top('guard_signal')} | "
        f"{spread(each(lambda rep: total('cpu_s', rep)), _fmt)} | "
        f"{spread(each(lambda rep: total('wakeups', rep)), _n)} | "
        f"{spread(each(lambda rep: max(pooled_rss(rep), default=None)), _mib)} |"
    )


def _cells(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The runs of each scenario x contender, in the order they first ran."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault((r["scenario"], r["contender"]), []).append(r)
    return out


def _scenario_row(scenario: str, contender: str, runs: list[dict[str, Any]]) -> str:
    def of(key: str) -> list[float | None]:
        return [r.get(key) for r in runs]

    how: dict[str, int] = {}
    for r in runs:
        for kind, n in r["victims_by"].items():
            how[kind] = how.get(kind, 0) + n
    how_text = ", ".join(f"{v} {k}" for k, v in sorted(how.items())) or "—"
    if len(runs) > 1 and how:
        how_text += f" in {len(runs)} runs"
    kills = of("oom_kills")
    oom = spread(kills, _n)
    if any(kills):
        oom = f"**{oom}**"
    if [r["vmstat_oom_kills"] for r in runs] != kills:
        oom += f" (vmstat {spread(of('vmstat_oom_kills'), _n)})"
    preserved = [None if r["preserved"] is None else 100 * r["preserved"] for r in runs]
    reaction = [percentile(r["reactions"], 0.5) for r in runs]
    workers = max(r["workers"] for r in runs)
    flags = sum(1 for r in runs if r["timed_out"]), sum(1 for r in runs if r["pool_missing"])
    return (
        f"| {scenario} | {LABELS.get(contender, contender)} | {oom} | "
        f"{spread(of('victims'), _n)}/{workers} ({how_text}) | "
        f"{spread(of('oldest_half_lost'), _n)} | "
        f"{spread(preserved, _pct)} | "
        f"{spread(of('relief_s'), _fmt)} | {spread(of('over_high_s'), _fmt)} | "
        f"{spread(reaction, _ms)} | {spread(of('peak'), _mib)} | "
        f"{spread(of('cpu_s'), _fmt)} | {spread(of('wakeups'), _n)} | "
        f"{spread(of('guard_peak_rss'), _mib)} |"
        + (f" {flags[0]} timed out" if flags[0] else "")
        + (f" {flags[1]} pool lost" if flags[1] else "")
    )


def unsettled_note(idle: list[dict[str, Any]]) -> list[str]:
    """A line naming the repetitions whose idle window began before every guard had settled
    (the start-up wait gave up): shown above, left out of the goals."""
    reps = sorted({i.get("repetition", 0) for i in idle if i.get("settled") is False})
    if not reps:
        return []
    names = ", ".join(str(r) for r in reps)
    which = f"repetitions {names}" if len(reps) > 1 else f"repetition {names}"
    return [
        "",
        f"Not settled: the idle window of {which} began before every guard had finished "
        "starting (`--settle-seconds` ran out); shown in the table above, left out of the "
        "goals.",
    ]


def _idle_cells(idle: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for i in idle:
        out.setdefault(i["contender"], []).append(i)
    return out


def _idle_row(contender: str, windows: list[dict[str, Any]]) -> str:
    def rate(i: dict[str, Any], key: str, factor: float = 1.0) -> float | None:
        value = i.get(key)
        return None if value is None else factor * value / i["seconds"]

    cpu = [i["cpu_seconds"] for i in windows]
    cpu_pct = [rate(i, "cpu_seconds", 100) for i in windows]
    woken = [i.get("wakeups") for i in windows]
    return (
        f"| {contender} | {spread(cpu, _fmt)} | "
        f"{spread(cpu_pct, lambda v: _fmt(v, '.2f', ' %'))} | "
        f"{spread(woken, _n)} | "
        f"{spread([rate(i, 'wakeups') for i in windows], lambda v: _fmt(v, '.1f'))} | "
        f"{spread([i['rss_bytes'] for i in windows], _mib)} | "
        f"{spread([i.get('peak_rss_bytes') for i in windows], _mib)} |"
    )


TRACE_STAGES = (
    ("wait", "detection -> step starts (inbox, spacing)"),
    ("measure", "step starts -> measured (candidates, usage)"),
    ("decide", "measured -> decided"),
    ("signal", "decided -> first signal sent"),
)


def _trace(rows: list[dict[str, Any]]) -> list[str]:
    """Where oomguard's detection -> signal goes: the median of each stage over every
    decision with victims (the guard's report traces each one)."""
    by_contender: dict[str, list[dict[str, float]]] = {}
    for r in rows:
        if r["scenario"] != "d":
            by_contender.setdefault(r["contender"], []).extend(r.get("trace") or [])
    if not any(by_contender.values()):
        return []
    lines = [
        "",
        "## Where detection -> signal goes (decisions with victims, all but d)",
        "",
        "Each decision's stages from the guard's report (`trace_seconds`), median and max in ms.",
        "",
        "| contender | decisions | " + " | ".join(label for _, label in TRACE_STAGES) + " |",
        "|---|---|" + "---|" * len(TRACE_STAGES),
    ]
    for contender, traces in by_contender.items():
        if not traces:
            continue
        cells = []
        for key, _ in TRACE_STAGES:
            values = [t[key] for t in traces if t.get(key) is not None]
            cells.append(f"{_ms(percentile(values, 0.5))} / {_ms(max(values) if values else None)}")
        lines.append(
            f"| {LABELS.get(contender, contender)} | {len(traces)} | " + " | ".join(cells) + " |"
        )
    return lines


def _mib(value: float | None) -> str:
    return "-" if not value else f"{value / MiB:.1f}"


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def chart(
    rows: list[dict[str, Any]],
    contenders: list[str],
    scenarios: list[str],
    path: Path,
    settings: dict[str, int],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = _cells(rows)
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    panels: list[tuple[str, Callable[[dict[str, Any]], float | None], str]] = [
        ("Kernel OOM kills (lower is better)", lambda r: r["oom_kills"], "{:.0f}"),
        (
            "Work preserved, % (higher is better)",
            lambda r: None if r["preserved"] is None else 100 * r["preserved"],
            "{:.0f}",
        ),
        ("First breach -> relief, s (lower is better)", lambda r: r["relief_s"], "{:.1f}"),
        (
            "Breach -> first victim stopped, p50 ms (lower is better)",
            lambda r: _scaled(percentile(r["reactions"], 0.5), 1000),
            "{:.0f}",
        ),
    ]
    colors = ["#7f7f7f", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd"]
    width = 0.8 / len(contenders)
    for ax, (title, value, fmt) in zip(axes.flat, panels, strict=True):
        for j, c in enumerate(contenders):
            xs, ys, low, high = [], [], [], []
            for i, s in enumerate(scenarios):
                values = [v for r in by.get((s, c), []) if (v := value(r)) is not None]
                if not values:
                    continue
                middle = median(values) or 0.0
                xs.append(i + (j - (len(contenders) - 1) / 2) * width)
                ys.append(middle)
                low.append(middle - min(values))
                high.append(max(values) - middle)
            bars = ax.bar(
                xs,
                ys,
                width,
                yerr=[low, high],  # the spread over the repetitions: min to max
                capsize=2,
                label=LABELS.get(c, c),
                color=colors[j % len(colors)],
            )
            for b, y in zip(bars, ys, strict=True):
                ax.annotate(
                    fmt.format(y),
                    (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        ax.set_title(title, fontsize=11)
        ax.set_xticks(range(len(scenarios)))
        ax.set_xticklabels([SHORT.get(s, s) for s in scenarios], fontsize=9)
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(contenders), fontsize=9)
    fig.suptitle(
        f"Memory storms on Linux cgroup v2 (memory.max {settings['memory_max'] // MiB} MiB, "
        f"soft limit {settings['memory_high'] // MiB} MiB)",
        fontsize=13,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
