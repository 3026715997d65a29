"""A pool of forked workers that outgrows its memory limit: the demo's and the tests' load.

    python -m demo.workload --scenario pool --results out.json   # a demo scenario
    python demo/workload.py --workers 6 --results out.json       # a staggered pool by flags

The pool (this process) forks its workers on schedule (in a scenario whose workers take
turns, each also waits for the one before to have grown). Each grows by a step every
interval (touching every page, so the memory is real and charged) until it holds its
size, keeps it for its hold time (taking turns: and until the last worker has grown)
and exits 0. Every step and every 0.1 s of holding is one
progress unit, counted in memory shared with the pool, so the pool knows how far a worker
got even when a signal ends it. The pool waits for all, prints one line per worker, writes
``--results`` JSON and exits 0 when every worker finished, 1 otherwise.

The pool asks the kernel never to pick it (``oom_score_adj`` -1000, when allowed) and its
workers reset that to 0, so the kernel's OOM killer chooses among workers only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mmap
import os
import signal
import struct
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if not __package__:  # run by path (python demo/workload.py): import the demo package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.scenarios import TICK, Scenario, WorkerSpec, plan, staggered_pool

MiB = 2**20
SLOT = struct.Struct("q")  # progress units, one slot per worker


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="workload", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", type=Scenario, choices=list(Scenario), help="a demo scenario")
    p.add_argument("--workers", type=int, default=6)
    p.add_argument("--stagger", type=float, default=0.3, help="seconds between worker starts")
    p.add_argument("--worker-mib", type=int, default=80)
    p.add_argument("--step-mib", type=int, default=10)
    p.add_argument("--step-interval", type=float, default=0.15)
    p.add_argument("--hold", type=float, default=3.0, help="seconds to hold full memory")
    p.add_argument("--results", type=Path, help="write per-worker outcomes here (JSON)")
    p.add_argument("--quiet", action="store_true", help="no per-step progress lines")
    p.add_argument("--in-turn", action="store_true", help="workers take turns (as in pool)")
    return p.parse_args(argv)


def specs_of(args: argparse.Namespace) -> tuple[WorkerSpec, ...]:
    if args.scenario is not None:
        return plan(args.scenario).workers
    return staggered_pool(
        args.workers, args.stagger, args.worker_mib, args.step_mib, args.step_interval, args.hold
    )


def say(text: str) -> None:
    os.write(1, (text + "\n").encode())


def worker(index: int, spec: WorkerSpec, slots: mmap.mmap, release: int, quiet: bool) -> None:
    """Grow in steps, hold, wait for the release, exit. Runs in the forked child; never
    returns."""
    with contextlib.suppress(OSError):
        Path("/proc/self/oom_score_adj").write_text("0")
    chunks: list[bytes] = []
    held = progress = 0
    while held < spec.target_mib:
        step = min(spec.step_mib, spec.target_mib - held)
        chunks.append(b"\1" * (step * MiB))  # filled, so every page is touched and charged
        held += step
        progress += 1
        SLOT.pack_into(slots, index * SLOT.size, progress)
        if not quiet:
            say(f"worker {index} pid {os.getpid()}: {held}/{spec.target_mib} MiB")
        if spec.step_interval:
            time.sleep(spec.step_interval)
    for _ in range(round(spec.hold / TICK)):
        time.sleep(TICK)
        progress += 1
        SLOT.pack_into(slots, index * SLOT.size, progress)
    while not SLOT.unpack_from(slots, release * SLOT.size)[0]:
        time.sleep(TICK)  # done, holding on until the last worker has grown (in turn)
    if not quiet:
        say(f"worker {index} pid {os.getpid()}: done")
    os._exit(0)


def describe(status: int) -> str:
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        return "finished" if code == 0 else f"exited {code}"
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"status {status}"  # pragma: no cover - stopped children are not waited for


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    specs = specs_of(args)
    in_turn = args.in_turn or (args.scenario is not None and plan(args.scenario).in_turn)
    with contextlib.suppress(OSError):  # the pool must outlive every kill to report
        Path("/proc/self/oom_score_adj").write_text("-1000")
    release = len(specs)  # the slot after the workers' progress: 1 = done workers may exit
    slots = mmap.mmap(-1, SLOT.size * (len(specs) + 1))
    SLOT.pack_into(slots, release * SLOT.size, 0 if in_turn else 1)
    pids: dict[int, int] = {}
    rows: list[dict[str, Any]] = [{} for _ in specs]
    t0 = time.monotonic()

    def grown_or_ended(i: int) -> bool:
        (progress,) = SLOT.unpack_from(slots, i * SLOT.size)
        return "outcome" in rows[i] or progress >= specs[i].steps

    def may_start(i: int) -> bool:
        on_time = time.monotonic() >= t0 + specs[i].start
        return on_time and (not in_turn or i == 0 or grown_or_ended(i - 1))

    sys.stdout.flush()
    for index, spec in enumerate(specs):
        while not may_start(index):
            reap(pids, rows, slots, specs, t0, block=False)
            time.sleep(0.01)
        pid = os.fork()
        if pid == 0:
            try:
                worker(index, spec, slots, release, args.quiet)
            finally:
                os._exit(70)
        pids[pid] = index
        rows[index] = {
            "index": index,
            "pid": pid,
            "started_seconds": round(time.monotonic() - t0, 3),
            "started_at": time.time(),
        }
        if not args.quiet:
            say(f"pool: started worker {index} pid {pid}")
    while specs and not grown_or_ended(len(specs) - 1):
        reap(pids, rows, slots, specs, t0, block=False)
        time.sleep(0.01)
    SLOT.pack_into(slots, release * SLOT.size, 1)
    while pids:
        reap(pids, rows, slots, specs, t0, block=True)
    for row in rows:
        say(f"pool: worker {row['index']} {row['outcome']}")
    if args.results:
        args.results.write_text(json.dumps({"workers": rows}, indent=2) + "\n")
    return 0 if all(row["outcome"] == "finished" for row in rows) else 1


def reap(
    pids: dict[int, int],
    rows: list[dict[str, Any]],
    slots: mmap.mmap,
    specs: Sequence[WorkerSpec],
    t0: float,
    *,
    block: bool,
) -> None:
    """Record every worker that has ended (waits for one when ``block``)."""
    while pids:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:  # pragma: no cover - nothing left to wait for
            pids.clear()
            return
        if pid == 0:
            return
        if pid not in pids:
            continue
        index = pids.pop(pid)
        (progress,) = SLOT.unpack_from(slots, index * SLOT.size)
        rows[index].update(
            ended_seconds=round(time.monotonic() - t0, 3),
            ended_at=time.time(),
            outcome=describe(status),
            progress=progress,
            planned=specs[index].planned_units,
        )
        if block:
            return


if __name__ == "__main__":
    sys.exit(main())
