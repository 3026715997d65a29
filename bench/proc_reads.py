"""What a guard step's measurement costs, read by read, side by side in one run.

A process guard's step lists every process of its cgroup (one ``/proc/PID/stat`` each, for
identity and age) and measures the newest until they cover the amount to free (PSS from
``smaps_rollup``, which the kernel computes by walking the page tables, so its cost grows
with the process's size; ``status`` holds counters and costs the same for any size). The
storm benchmark's trace showed the measurement as most of oomguard's detection -> signal
(``docs/bench/storm.md``); this says which read it is.

Run on the host, or in the real-kernel VM (emulated CPUs, where every figure is larger):

    .venv/bin/python bench/proc_reads.py
    tests/vm/run-in-vm --memory 2G -- .venv/bin/python bench/proc_reads.py

Prints medians over ``--repetitions`` rounds with [min-max], and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from oomguard.monitor.kernel.procfs import ProcReader, ProcStat, parse_stat

MIB = 2**20
ALLOCATOR = (
    "import sys, time\n"
    "b = bytearray(int(sys.argv[1]))\n"
    "for i in range(0, len(b), 4096): b[i] = 1\n"
    "print('ready', flush=True)\n"
    "time.sleep(3600)\n"
)


def rounds(read: Callable[[], object], repetitions: int, per_round: int) -> list[float]:
    """Milliseconds per call, one figure per round (the round's mean)."""
    out = []
    for _ in range(repetitions):
        t0 = time.perf_counter()
        for _ in range(per_round):
            read()
        out.append((time.perf_counter() - t0) * 1000 / per_round)
    return out


def shown(values: Sequence[float]) -> str:
    med = statistics.median(values)
    return f"{med:8.3f} [{min(values):.3f}-{max(values):.3f}]"


def read_file(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


def pathlib_stat_listing(pids: Sequence[int]) -> list[ProcStat]:
    """How ProcReader read /proc/PID/stat before: Path(...).read_bytes() per process."""
    return [parse_stat((Path("/proc") / str(pid) / "stat").read_bytes()) for pid in pids]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--processes", type=int, default=120, help="size of the listed pool")
    p.add_argument("--sizes-mib", default="16,64,256", help="allocators to measure")
    p.add_argument("--repetitions", type=int, default=5)
    p.add_argument("--per-round", type=int, default=10)
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes_mib.split(",") if s]
    sleepers = [subprocess.Popen(["sleep", "3600"]) for _ in range(args.processes)]
    allocators = {}
    try:
        for size in sizes:
            child = subprocess.Popen(
                [sys.executable, "-c", ALLOCATOR, str(size * MIB)], stdout=subprocess.PIPE
            )
            assert child.stdout is not None
            child.stdout.readline()  # its memory is touched
            allocators[size] = child
        reader = ProcReader()
        pids = [s.pid for s in sleepers]
        reps, n = args.repetitions, args.per_round
        print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs; ms per call, median [min-max]")
        print(f"over {reps} rounds of {n} calls\n")
        before = rounds(lambda: pathlib_stat_listing(pids), reps, n)
        after = rounds(lambda: [reader.stat(pid) for pid in pids], reps, n)
        print(f"listing {len(pids)} processes (stat, identity and age)")
        ratio = statistics.median(after) / statistics.median(before)
        print(f"  Path.read_bytes (before)   {shown(before)}")
        print(f"  os.read (ProcReader now)   {shown(after)}")
        print(f"  now / before               {ratio:8.2f}x\n")
        print("one process's memory: smaps_rollup (PSS) against status (VmRSS, RssAnon)")
        print(f"  {'MiB':>5} {'smaps_rollup':>26} {'status':>26} {'ratio':>8}")
        for size, child in allocators.items():
            pid = child.pid
            pss = rounds(lambda pid=pid: read_file(f"/proc/{pid}/smaps_rollup"), reps, n)
            rss = rounds(lambda pid=pid: read_file(f"/proc/{pid}/status"), reps, n)
            ratio = statistics.median(pss) / statistics.median(rss)
            print(f"  {size:>5} {shown(pss):>26} {shown(rss):>26} {ratio:>7.1f}x")
    finally:
        for proc in [*sleepers, *allocators.values()]:
            proc.kill()
            proc.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
