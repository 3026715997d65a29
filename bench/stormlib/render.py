"""docs/bench/storm.md and storm.png from the analysed runs."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stormlib.analysis import analyse, percentile
from stormlib.plan import LABELS, SCENARIOS, SHORT, MiB


def _fmt(value: float | None, spec: str = ".2f", unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


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
    lines += _headline(rows, contenders, scenarios)
    lines += ["", "## Per scenario", ""]
    lines += [
        "| scenario | contender | kernel OOM kills | victims (how) | oldest half lost | "
        "work preserved | breach -> relief (s) | time over soft limit (s) | "
        "breach -> victim stopped p50 (ms) | peak (MiB) | guard CPU (s) | guard wake-ups | "
        "guard peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        how = ", ".join(f"{v} {k}" for k, v in sorted(r["victims_by"].items())) or "—"
        oom = f"**{r['oom_kills']}**" if r["oom_kills"] else "0"
        if r["vmstat_oom_kills"] != r["oom_kills"]:
            oom += f" (vmstat {r['vmstat_oom_kills']})"
        lines.append(
            f"| {r['scenario']} | {LABELS.get(r['contender'], r['contender'])} | {oom} | "
            f"{r['victims']}/{r['workers']} ({how}) | {r['oldest_half_lost']} | "
            f"{_fmt(None if r['preserved'] is None else 100 * r['preserved'], '.0f', ' %')} | "
            f"{_fmt(r['relief_s'])} | {_fmt(r['over_high_s'])} | "
            f"{_ms(percentile(r['reactions'], 0.5))} | {r['peak'] // MiB} | "
            f"{_fmt(r['cpu_s'])} | {_fmt(r.get('wakeups'), '.0f')} | "
            f"{_mib(r.get('guard_peak_rss'))} |"
            + (" timed out" if r["timed_out"] else "")
            + (" pool lost" if r["pool_missing"] else "")
        )
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
        for i in data["idle"]:
            cpu = i["cpu_seconds"]
            pct = None if cpu is None else 100 * cpu / i["seconds"]
            woken = i.get("wakeups")
            rate = None if woken is None else woken / i["seconds"]
            lines.append(
                f"| {i['contender']} | {_fmt(cpu, '.2f')} | {_fmt(pct, '.2f', ' %')} | "
                f"{_fmt(woken, '.0f')} | {_fmt(rate, '.1f')} | "
                f"{(i['rss_bytes'] or 0) / MiB:.1f} | {_mib(i.get('peak_rss_bytes'))} |"
            )
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
    lines = [
        "## Headline",
        "",
        "| contender | kernel OOM kills (a, b, c, e) | kernel OOM kills (d) | victims | "
        "work preserved (mean) | breach -> first signal p50 / max (ms, a b c e) | "
        "breach -> victim stopped p50 / p95 / max (ms, a b c e) | "
        "oomguard's own detection -> signal p50 / max (ms, a b c e) | guard CPU, all runs (s) | "
        "guard wake-ups, all runs | guard peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in contenders:
        mine = [r for r in rows if r["contender"] == c]
        main = sum(r["oom_kills"] for r in mine if r["scenario"] != "d")
        d = sum(r["oom_kills"] for r in mine if r["scenario"] == "d")
        reactions = [x for r in mine if r["scenario"] != "d" for x in r["reactions"]]
        to_signal = [
            x for r in mine if r["scenario"] != "d" for x in r.get("breach_to_signal") or []
        ]
        kept = [r["preserved"] for r in mine if r["preserved"] is not None]
        cpu = [r["cpu_s"] for r in mine if r["cpu_s"] is not None]
        own = [x for r in mine if r["scenario"] != "d" for x in r["guard_signal"]]
        woken = [r["wakeups"] for r in mine if r.get("wakeups") is not None]
        peaks = [r["guard_peak_rss"] for r in mine if r.get("guard_peak_rss")]
        main_txt = "-" if all(r["scenario"] == "d" for r in mine) else str(main)
        lines.append(
            f"| {LABELS.get(c, c)} | {main_txt} | "
            f"{d if any(r['scenario'] == 'd' for r in mine) else '-'} | "
            f"{sum(r['victims'] for r in mine)} | "
            f"{_fmt(100 * statistics.mean(kept) if kept else None, '.0f', ' %')} | "
            f"{_ms(percentile(to_signal, 0.5))} / {_ms(max(to_signal) if to_signal else None)} | "
            f"{_ms(percentile(reactions, 0.5))} / {_ms(percentile(reactions, 0.95))} / "
            f"{_ms(max(reactions) if reactions else None)} | "
            f"{_ms(percentile(own, 0.5))} / {_ms(max(own) if own else None)} | "
            f"{_fmt(sum(cpu) if cpu else None)} | {_fmt(sum(woken) if woken else None, '.0f')} | "
            f"{_mib(max(peaks) if peaks else None)} |"
        )
    return lines


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
        "## Where detection -> signal goes (decisions with victims, a b c e)",
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

    by = {(r["scenario"], r["contender"]): r for r in rows}
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
            xs, ys = [], []
            for i, s in enumerate(scenarios):
                r = by.get((s, c))
                v = None if r is None else value(r)
                if v is None:
                    continue
                xs.append(i + (j - (len(contenders) - 1) / 2) * width)
                ys.append(v)
            bars = ax.bar(xs, ys, width, label=LABELS.get(c, c), color=colors[j % len(colors)])
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
