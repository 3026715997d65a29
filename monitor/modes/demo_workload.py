"""A staggered worker pool that outgrows its memory limit: the demo's and the tests' load.

    python -m oomguard.monitor.modes.demo_workload --workers 6 --results out.json

The pool (this process) forks ``--workers`` workers ``--stagger`` seconds apart. Each
grows by ``--step-mib`` every ``--step-interval`` seconds (touching every page, so the
memory is real and charged) until it holds ``--worker-mib``, keeps it ``--hold`` seconds
and exits 0. Every worker prints its progress. The pool waits for all, prints one line
per worker (finished, or the signal that ended it), writes ``--results`` JSON, and exits
0 when every worker finished, 1 otherwise.

Forked workers share the interpreter's pages, so each one's own memory is close to what
it allocated; the newest is always the one that started last.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

MiB = 2**20


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="demo_workload", description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=6)
    p.add_argument("--stagger", type=float, default=0.3, help="seconds between worker starts")
    p.add_argument("--worker-mib", type=int, default=80)
    p.add_argument("--step-mib", type=int, default=10)
    p.add_argument("--step-interval", type=float, default=0.15)
    p.add_argument("--hold", type=float, default=3.0, help="seconds to hold full memory")
    p.add_argument("--results", type=Path, help="write per-worker outcomes here (JSON)")
    p.add_argument("--quiet", action="store_true", help="no per-step progress lines")
    return p.parse_args(argv)


def say(text: str) -> None:
    os.write(1, (text + "\n").encode())


def worker(index: int, args: argparse.Namespace) -> None:
    """Grow in steps, hold, exit. Runs in the forked child; never returns."""
    chunks: list[bytes] = []
    held = 0
    while held < args.worker_mib:
        step = min(args.step_mib, args.worker_mib - held)
        chunks.append(b"\1" * (step * MiB))  # filled, so every page is touched and charged
        held += step
        if not args.quiet:
            say(f"worker {index} pid {os.getpid()}: {held}/{args.worker_mib} MiB")
        time.sleep(args.step_interval)
    time.sleep(args.hold)
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
    pids: dict[int, int] = {}
    started: dict[int, float] = {}
    t0 = time.monotonic()
    sys.stdout.flush()
    for index in range(args.workers):
        if index:
            time.sleep(args.stagger)
        pid = os.fork()
        if pid == 0:
            try:
                worker(index, args)
            finally:
                os._exit(70)
        pids[pid] = index
        started[index] = time.monotonic() - t0
        say(f"pool: started worker {index} pid {pid}")
    outcomes: dict[int, dict[str, object]] = {}
    while pids:
        try:
            pid, status = os.wait()
        except ChildProcessError:  # pragma: no cover - nothing left to wait for
            break
        if pid not in pids:
            continue
        index = pids.pop(pid)
        outcomes[index] = {
            "index": index,
            "pid": pid,
            "started_seconds": round(started[index], 3),
            "ended_seconds": round(time.monotonic() - t0, 3),
            "outcome": describe(status),
        }
    for index in sorted(outcomes):
        say(f"pool: worker {index} {outcomes[index]['outcome']}")
    if args.results:
        ordered = [outcomes[i] for i in sorted(outcomes)]
        args.results.write_text(json.dumps({"workers": ordered}, indent=2) + "\n")
    return 0 if all(o["outcome"] == "finished" for o in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
