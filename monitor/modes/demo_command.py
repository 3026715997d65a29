"""`oomguard demo`: the same worker pool twice, once as the kernel handles it, once guarded.

On a host without a cgroup v2 memory controller (like the development machines here) it
boots the real-kernel VM with the repository's ``tests/vm/run-in-vm`` and runs itself
inside (``--inside``); on a host that has one, as root, it runs directly.

Both runs use the same staggered pool (``demo_workload``) and the same memory.max:
"before" is ``oomguard guard --dry-run`` (no memory.high, nobody signalled: the kernel
OOM killer decides), "after" is ``oomguard guard --memory-high``. The summary compares
kernel ``oom_kill`` counts and which workers finished.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oomguard.monitor.kernel.cgroupfs import CgroupV2Unavailable, find_cgroup2_mount

WORKLOAD = "oomguard.monitor.modes.demo_workload"
RUN_IN_VM_ENV = "OOMGUARD_RUN_IN_VM"


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    dry_run: bool


SCENARIOS = (
    Scenario("before", "without oomguard (dry run: the kernel decides)", dry_run=True),
    Scenario("after", "with oomguard", dry_run=False),
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--memory-high", default="220Mi", help="(default %(default)s)")
    parser.add_argument("--memory-max", default="300Mi", help="(default %(default)s)")
    parser.add_argument("--workers", type=int, default=6, help="(default %(default)s)")
    parser.add_argument("--out", type=Path, help="keep reports and worker results here")
    parser.add_argument("--vm-memory", default="1G", help="VM RAM (default %(default)s)")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    out = args.out or Path(tempfile.mkdtemp(prefix="oomguard-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    if args.inside or (os.geteuid() == 0 and host_has_memory_controller()):
        return run_scenarios(args, out)
    return run_in_vm(args, out)


def host_has_memory_controller() -> bool:
    try:
        mount = find_cgroup2_mount()
    except (CgroupV2Unavailable, OSError):
        return False
    try:
        return "memory" in (mount / "cgroup.controllers").read_text().split()
    except OSError:
        return False


def find_run_in_vm() -> Path | None:
    override = os.environ.get(RUN_IN_VM_ENV)
    if override:
        return Path(override)
    # src/oomguard/monitor -> repository root (editable installs and checkouts)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "tests" / "vm" / "run-in-vm"
        if candidate.is_file():
            return candidate
    return None


def run_in_vm(args: argparse.Namespace, out: Path) -> int:
    runner = find_run_in_vm()
    if runner is None:
        print(
            "oomguard demo: this host has no cgroup v2 memory controller and the VM runner "
            f"(tests/vm/run-in-vm of the repository) was not found; set {RUN_IN_VM_ENV}",
            file=sys.stderr,
        )
        return 2
    print(f"booting the real-kernel VM ({args.vm_memory}, software emulation, ~30 s)...")
    sys.stdout.flush()
    inner = [
        sys.executable,
        "-m",
        "oomguard",
        "demo",
        "--inside",
        "--out",
        str(out),
        "--memory-high",
        args.memory_high,
        "--memory-max",
        args.memory_max,
        "--workers",
        str(args.workers),
    ]
    command = [
        sys.executable,
        str(runner),
        "--memory",
        args.vm_memory,
        "--rwdir",
        str(out),
        "--timeout",
        "900",
        "--",
        *inner,
    ]
    return subprocess.run(command, check=False).returncode


def run_scenarios(args: argparse.Namespace, out: Path) -> int:
    results: dict[str, dict[str, Any]] = {}
    for scenario in SCENARIOS:
        print(f"\n=== {scenario.title}: memory.max {args.memory_max} ===", flush=True)
        report = out / f"{scenario.name}-report.json"
        workers = out / f"{scenario.name}-workers.json"
        command = [
            sys.executable,
            "-m",
            "oomguard",
            "guard",
            "--memory-high",
            args.memory_high,
            "--memory-max",
            args.memory_max,
            "--grace",
            "1",
            "--report",
            str(report),
        ]
        if scenario.dry_run:
            command.append("--dry-run")
        command += [
            "--",
            sys.executable,
            "-m",
            WORKLOAD,
            "--workers",
            str(args.workers),
            "--results",
            str(workers),
        ]
        status = subprocess.run(command, check=False).returncode
        results[scenario.name] = {
            "status": status,
            "report": _load(report),
            "workers": (_load(workers) or {}).get("workers", []),
        }
    print(summary(results))
    before, after = results["before"], results["after"]
    ok = _oom_kills(before) > 0 and _oom_kills(after) == 0 and _finished(after)[:2] == [0, 1]
    return 0 if ok else 1


def _load(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _oom_kills(result: dict[str, Any]) -> int:
    report = result.get("report") or {}
    final = report.get("memory_events", {}).get("final", {})
    return int(final.get("oom_kill", -1))


def _finished(result: dict[str, Any]) -> list[int]:
    return [w["index"] for w in result["workers"] if w["outcome"] == "finished"]


def index_ranges(indices: Sequence[int]) -> str:
    """``[0, 1, 2, 3, 5]`` -> ``0-3, 5``: worker numbers without one column per worker."""
    spans: list[tuple[int, int]] = []
    for i in sorted(indices):
        if spans and i == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], i)
        else:
            spans.append((i, i))
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _tally(labels: Sequence[str]) -> str:
    """``[SIGKILL, SIGKILL, SIGTERM]`` -> ``2 SIGKILL, 1 SIGTERM`` (most common first)."""
    counts = Counter(labels)
    return ", ".join(f"{n} {label}" for label, n in counts.most_common())


def _workers_lost(result: dict[str, Any]) -> str:
    lost = [w for w in result["workers"] if w["outcome"] != "finished"]
    if not lost:
        return "-"
    how = _tally([str(w["outcome"]).removeprefix("killed by ") for w in lost])
    return f"{len(lost)} ({index_ranges([w['index'] for w in lost])}): {how}"


def _stopped_by_guard(result: dict[str, Any]) -> str:
    report = result.get("report") or {}
    pid_to_index = {w["pid"]: w["index"] for w in result["workers"]}
    stopped = [v for v in report.get("victims", []) if v.get("signal")]
    if not stopped:
        return "-"
    known = [pid_to_index[v["pid"]] for v in stopped if v["pid"] in pid_to_index]
    who = index_ranges(known) + (", ?" if len(known) < len(stopped) else "")
    ms = sorted(round((v["detection_to_signal_seconds"] or 0) * 1000) for v in stopped)
    after = f"{ms[0]} ms" if ms[0] == ms[-1] else f"{ms[0]}-{ms[-1]} ms"
    signals = _tally([str(v["signal"]) for v in stopped])
    return f"{len(stopped)} ({who}): {signals}, {after} after detection"


def summary(results: dict[str, dict[str, Any]]) -> str:
    rows = [("", "without oomguard", "with oomguard")]

    def row(label: str, fn: Any) -> None:
        rows.append((label, str(fn(results["before"])), str(fn(results["after"]))))

    count = len(results["after"]["workers"]) or len(results["before"]["workers"])
    row("kernel oom_kill", _oom_kills)
    row(
        "workers finished",
        lambda r: (
            f"{len(_finished(r))} of {count}"
            + (f" ({index_ranges(_finished(r))})" if _finished(r) else "")
        ),
    )
    row("workers lost", _workers_lost)
    row("stopped by oomguard", _stopped_by_guard)
    width = max(len(r[0]) for r in rows) + 2
    col = max(len(r[1]) for r in rows) + 2
    lines = ["", "=== summary (workers numbered by start, 0 = oldest) ==="]
    lines += [f"{a:<{width}}{b:<{col}}{c}" for a, b, c in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    # Developer tooling, not an `oomguard` subcommand: scripts/demo runs this module.
    _parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description="Boot the VM and show a worker pool the kernel OOM-kills surviving "
        "under oomguard.",
    )
    configure(_parser)
    sys.exit(run(_parser.parse_args()))
