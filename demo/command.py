"""``scripts/demo``: one workload twice under the same memory.max, the kernel alone vs oomguard.

On a host without a cgroup v2 memory controller (like the development machines here) it
boots the real-kernel VM with ``tests/vm/run-in-vm`` and runs itself inside
(``python -m demo --inside``); on a host that has one, as root, it runs directly.

"Kernel alone" is ``oomguard guard --dry-run`` (no memory.high, nobody signalled: the
kernel OOM killer decides); "with oomguard" is ``oomguard guard --memory-high``. Each run's
guard log (JSON lines) and the workload's own output go to a log file; the screen gets one
line per event, one bar per worker, and the summary last (``--json``: the summary as JSON
on stdout, everything else on stderr). The summary's JSON is also left in the output
folder as ``summary.json``, beside the logs, reports and worker results.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from demo.events import format_event, timeline
from demo.render import Run, summary_json, summary_text, worker_bars
from demo.results import RunResults, parse_log, parse_run
from demo.sampler import Sampler
from demo.scenarios import Plan, Scenario, plan
from demo.summary import RunSummary, Verdict, summarize, verdict
from oomguard.monitor.kernel.cgroupfs import CgroupV2Unavailable, find_cgroup2_mount

REPO = Path(__file__).resolve().parents[1]
RUN_IN_VM = REPO / "tests" / "vm" / "run-in-vm"
PARENT_CGROUP = "oomguard-demo"
RUN_TIMEOUT = 600  # one run; emulation on a loaded host is slow (minutes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description="Boot the real-kernel VM and run one workload twice under the same "
        "memory.max: the kernel OOM killer alone, then oomguard stopping the newest first.",
    )
    parser.add_argument(
        "--scenario",
        type=Scenario,
        choices=list(Scenario),
        default=Scenario.POOL,
        help="the workload (default %(default)s; the others are bench/storm.py's b, c, e)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--memory-high", metavar="SIZE", help="override the scenario's")
    parser.add_argument("--memory-max", metavar="SIZE", help="override the scenario's")
    parser.add_argument("--out", type=Path, help="keep logs, reports and results here")
    parser.add_argument("--vm-memory", default="1G", help="VM RAM (default %(default)s)")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="oomguard-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    if args.inside or (os.geteuid() == 0 and host_has_memory_controller()):
        return run_both(args, out)
    return run_in_vm(args, out)


def host_has_memory_controller() -> bool:
    try:
        mount = find_cgroup2_mount()
        return "memory" in (mount / "cgroup.controllers").read_text().split()
    except (CgroupV2Unavailable, OSError):
        return False


def screen(args: argparse.Namespace) -> TextIO:
    """Where the human-readable lines go: stderr when stdout carries the JSON."""
    return sys.stderr if args.json else sys.stdout


def run_in_vm(args: argparse.Namespace, out: Path) -> int:
    print(
        f"booting the real-kernel VM ({args.vm_memory}, software emulation, ~30-60 s)...",
        file=screen(args),
        flush=True,
    )
    inner = [sys.executable, "-m", "demo", "--inside", "--out", str(out)]
    inner += ["--scenario", str(args.scenario)]
    for flag, value in (("--memory-high", args.memory_high), ("--memory-max", args.memory_max)):
        if value:
            inner += [flag, value]
    if args.json:
        inner.append("--json")
    command = [sys.executable, str(RUN_IN_VM), "--memory", args.vm_memory, "--rwdir", str(out)]
    command += ["--timeout", "1800", "--", *inner]
    return subprocess.run(command, check=False).returncode


def guard_command(plan_: Plan, args: argparse.Namespace, out: Path, run: Run) -> list[str]:
    high = args.memory_high or f"{plan_.memory_high_mib}Mi"
    top = args.memory_max or f"{plan_.memory_max_mib}Mi"
    command = [sys.executable, "-m", "oomguard", "guard", "--memory-high", high]
    command += ["--memory-max", top, "--grace", "1", "--log-format", "json"]
    command += ["--report", str(out / f"{run.value}-report.json")]
    command += ["--parent", str(find_cgroup2_mount() / PARENT_CGROUP)]
    if run is Run.KERNEL:
        command.append("--dry-run")
    command += ["--", sys.executable, "-m", "demo.workload", "--quiet"]
    command += ["--scenario", str(plan_.scenario)]
    command += ["--results", str(out / f"{run.value}-workers.json")]
    return command


def run_once(plan_: Plan, args: argparse.Namespace, out: Path, run: Run) -> RunResults:
    log_path = out / f"{run.value}.log"
    parent = find_cgroup2_mount() / PARENT_CGROUP
    parent.mkdir(exist_ok=True)
    sampler = Sampler(parent)
    sampler.start()
    try:
        with log_path.open("w") as log:
            guard = subprocess.Popen(
                guard_command(plan_, args, out, run), stdout=log, stderr=subprocess.STDOUT
            )
            try:
                guard.wait(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"  timed out after {RUN_TIMEOUT} s: stopping it", file=screen(args))
                guard.terminate()  # the guard stops its command and removes its cgroup
                try:
                    guard.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    guard.kill()
                    guard.wait()
    finally:
        samples = sampler.stop()
        with contextlib.suppress(OSError):
            parent.rmdir()
    return parse_run(
        _load(out / f"{run.value}-report.json"),
        _load(out / f"{run.value}-workers.json"),
        parse_log(log_path.read_text().splitlines()),
        samples,
    )


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_both(args: argparse.Namespace, out: Path) -> int:
    to = screen(args)
    plan_ = plan(args.scenario)
    print(f"scenario {plan_.scenario}: {plan_.title}", file=to)
    runs: dict[Run, RunResults] = {}
    for run in Run:
        print(f"\n--- {run.title} ---", file=to, flush=True)
        runs[run] = result = run_once(plan_, args, out, run)
        for event in timeline(result):
            print(format_event(event), file=to)
        print("  workers (0 = oldest), progress units:", file=to)
        for line in worker_bars(result):
            print(line, file=to)
        to.flush()
    summaries: dict[Run, RunSummary] = {run: summarize(runs[run]) for run in Run}
    outcome = verdict(summaries[Run.KERNEL], summaries[Run.GUARDED])
    logs = {run: str(out / f"{run.value}.log") for run in Run}
    document = json.dumps(
        summary_json(str(plan_.scenario), summaries, runs, logs, outcome), indent=2
    )
    (out / "summary.json").write_text(document + "\n")
    if args.json:
        print(document, flush=True)
    else:
        soft = f"{runs[Run.GUARDED].memory_high_bytes // 2**20} MiB"
        logs_text = f"{logs[Run.KERNEL]}, {logs[Run.GUARDED]}"
        print(summary_text(summaries, soft, logs_text, outcome), flush=True)
    return 0 if succeeded(plan_.scenario, summaries, outcome) else 1


def succeeded(scenario: Scenario, summaries: dict[Run, RunSummary], outcome: Verdict) -> bool:
    """oomguard never lets the kernel OOM-kill; on the default pool it must also keep more
    work than the kernel alone, which must have killed."""
    if summaries[Run.GUARDED].oom_kills != 0:
        return False
    if scenario is not Scenario.POOL:
        return True
    return summaries[Run.KERNEL].oom_kills > 0 and outcome is Verdict.GUARD_KEPT_MORE
