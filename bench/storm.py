"""Memory storms on the real kernel: oomguard vs a polling guard vs earlyoom vs the kernel alone.

    .venv/bin/python bench/storm.py   # one VM boot, all scenarios x contenders, 3 times, ~40 min

Boots ONE real-kernel VM (tests/vm/run-in-vm) and, inside it, runs every scenario under
every contender, one after the other, each in a fresh cgroup with the same memory.max.
Then (on the host) writes ``docs/bench/storm.md`` (tables, the exact command, the load)
and ``docs/bench/storm.png``. The raw measurements stay in ``docs/bench/storm-raw.json.gz``;
``bench/storm.py render`` redraws from them. See bench/README.md for what is measured
and how.

Subcommands (the host calls the others itself): ``run`` (default), ``in-vm`` (the
driver, inside the VM), ``pool`` (a scenario's workload), ``loader`` (scenario d's
shared-memory owner), ``render``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from stormlib.plan import (
    CONTENDERS,
    REPETITIONS,
    ROOT,
    RUN_TIMEOUT,
    SCENARIOS,
    SHM_DIR,
    MiB,
)
from stormlib.proc import STARTED_UP_SHARE
from stormlib.render import render
from stormlib.vm_driver import in_vm_main
from stormlib.workload import loader_main, pool_main


def host_main(args: argparse.Namespace) -> int:
    if subprocess.run(["sh", "-c", "command -v earlyoom"], capture_output=True).returncode:
        print("storm: earlyoom is missing (scripts/setup installs it)", file=sys.stderr)
        return 2
    subprocess.run(["bash", str(ROOT / "tests/vm/setup")], check=True)
    raw = Path(args.raw or f"/tmp/oomguard-storm-{os.getpid()}")
    raw.mkdir(parents=True, exist_ok=True)
    command = "bench/storm.py " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "bench/storm.py"
    command = ".venv/bin/python " + command
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    t0 = time.monotonic()
    inner = [
        str(ROOT / ".venv/bin/python"),
        str(Path(__file__).resolve()),
        "in-vm",
        "--raw",
        str(raw),
        "--memory-high",
        str(args.memory_high),
        "--memory-max",
        str(args.memory_max),
        "--idle-seconds",
        str(args.idle_seconds),
        "--scenarios",
        ",".join(args.scenarios),
        "--contenders",
        ",".join(args.contenders),
        "--run-timeout",
        str(args.run_timeout),
        "--settle-seconds",
        str(args.settle_seconds),
        "--repetitions",
        str(args.repetitions),
        *(["--base-src", args.base_src] if args.base_src else []),
    ]
    vm = [str(ROOT / "tests/vm/run-in-vm"), "--memory", args.vm_memory, "--cpus", "2"]
    vm += ["--rwdir", str(raw), "--timeout", str(args.timeout), "--", *inner]
    status = subprocess.run(vm, check=False).returncode
    wall = time.monotonic() - t0
    if status != 0 or not (raw / "storm-raw.json").exists():
        print(f"storm: the VM run failed (status {status}); raw files in {raw}", file=sys.stderr)
        return 1
    data = json.loads((raw / "storm-raw.json").read_text())
    host = {
        "load_before": load_before,
        "load_after": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "wall_seconds": wall,
    }
    data["host"] = host
    data["command"] = command
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "storm-raw.json.gz").write_bytes(gzip.compress(json.dumps(data).encode() + b"\n"))
    render(data, out, command, host)
    print(f"storm: wrote {out / 'storm.md'} and {out / 'storm.png'} in {wall:.0f} s")
    return 0


def render_main(args: argparse.Namespace) -> int:
    blob = Path(args.raw_json).read_bytes()
    data = json.loads(gzip.decompress(blob) if args.raw_json.endswith(".gz") else blob)
    render(data, Path(args.out), data.get("command", "?"), data.get("host", {}))
    return 0


def _size(text: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def _list(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        argv = ["run", *argv]
    p = argparse.ArgumentParser(prog="bench/storm.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def sizes(q: argparse.ArgumentParser) -> None:
        q.add_argument("--memory-max", type=_size, default=256 * MiB)
        q.add_argument("--memory-high", type=_size, default=192 * MiB)
        q.add_argument("--idle-seconds", type=float, default=60.0)
        q.add_argument("--scenarios", type=_list, default=list(SCENARIOS))
        q.add_argument("--contenders", type=_list, default=list(CONTENDERS))
        q.add_argument(
            "--settle-seconds",
            type=float,
            default=40.0,
            help="longest wait for the idle guards' start-up to be over before the idle "
            f"window (each under {STARTED_UP_SHARE * 100:.0f} %% of a core over 2 s); a "
            "loaded host needs more",
        )
        q.add_argument(
            "--run-timeout",
            type=float,
            default=RUN_TIMEOUT,
            help="seconds one scenario x contender may take in the VM (a loaded host needs "
            "more: Python's start-up alone can take a minute under emulation)",
        )
        q.add_argument(
            "--repetitions",
            type=int,
            default=REPETITIONS,
            help="runs of every scenario x contender and of the idle window; the page shows "
            "their medians with min-max",
        )
        q.add_argument(
            "--base-src",
            help="another checkout's src/ (say, main before a change): contender "
            "oomguard-base runs it, and the idle cost measures it too",
        )

    run = sub.add_parser("run")
    sizes(run)
    run.add_argument("--out", default=str(ROOT / "docs" / "bench"))
    run.add_argument("--raw", help="keep the VM's raw files here (default: a /tmp folder)")
    run.add_argument("--vm-memory", default="2G")
    run.add_argument("--timeout", type=int, default=5400, help="the whole VM run, boot included")
    vm = sub.add_parser("in-vm")
    sizes(vm)
    vm.add_argument("--raw", type=Path, required=True)
    vm.add_argument("--no-extras", dest="extras", action="store_false")
    pool = sub.add_parser("pool")
    pool.add_argument("--scenario", required=True)
    pool.add_argument("--results", type=Path, required=True)
    pool.add_argument("--shm-dir", type=Path, default=SHM_DIR)
    pool.add_argument("--worker-cgroup", type=Path, help="move each worker here after fork")
    loader = sub.add_parser("loader")
    loader.add_argument("--shm-dir", type=Path, default=SHM_DIR)
    loader.add_argument("--stop-file", required=True)
    rend = sub.add_parser("render")
    rend.add_argument("raw_json")
    rend.add_argument("--out", default=str(ROOT / "docs" / "bench"))
    args = p.parse_args(argv)
    handlers = {
        "run": host_main,
        "in-vm": in_vm_main,
        "pool": pool_main,
        "loader": loader_main,
        "render": render_main,
    }
    return handlers[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
