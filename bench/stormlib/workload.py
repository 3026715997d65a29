"""The storm workloads: a pool (``storm-pool``) forks workers (``storm-worker``) on a
scenario's schedule and writes each one's outcome; scenario d's data owner (``storm-loader``)
writes the shared files its workers map."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import mmap
import os
import signal
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stormlib.plan import TICK, MiB


@dataclass(frozen=True)
class WorkerSpec:
    start: float  # seconds after the pool's start
    target_mib: int
    step_mib: int
    step_interval: float
    hold: float
    shm_mib: int = 0  # scenario d: map (and read) a file of this size written by the loader
    # scenario f: after its steady part, this many bursts of BURST_PERIOD: allocate
    # burst_mib at once, hold half the period, free it but keep burst_keep_mib, rest half
    bursts: int = 0
    burst_mib: int = 0
    burst_keep_mib: int = 0

    @property
    def planned_units(self) -> int:
        steps = -(-self.target_mib // self.step_mib) if self.step_mib else 0
        return steps + round(self.hold / TICK) + (1 if self.shm_mib else 0) + self.bursts


BURST_PERIOD = 0.08  # faster than the guard's 0.1 s step spacing and threshold poll


def scenario_workers(name: str) -> list[WorkerSpec]:
    """The scenarios, sized for memory.max 256 MiB and memory.high 192 MiB (75 %)."""
    if name == "a":  # 6 x 60 MiB, 1 s apart, each holds 4 s: up to ~330 MiB wanted
        return [WorkerSpec(1.0 * i, 60, 10, 0.2, 4.0) for i in range(6)]
    if name == "b":  # 3 x 50 MiB steady, then one process grabs 200 MiB as fast as it can
        steady = [WorkerSpec(0.3 * i, 50, 10, 0.1, 7.0) for i in range(3)]
        return [*steady, WorkerSpec(3.0, 200, 16, 0.0, 2.0)]
    if name == "c":  # 40 x 30 MiB, 0.15 s apart, 1.5 s hold: ~12 alive at once
        return [WorkerSpec(0.15 * i, 30, 10, 0.1, 1.5) for i in range(40)]
    if name == "d":  # 5 workers, each maps 56 MiB of tmpfs written by a sibling + 8 MiB own
        return [WorkerSpec(1.0 * i, 8, 8, 0.1, 4.0, shm_mib=56) for i in range(5)]
    if name == "e":  # 3 x 50 MiB steady for 11 s; a newer process leaks 2 MiB per 0.1 s
        steady = [WorkerSpec(0.3 * i, 50, 10, 0.1, 11.0) for i in range(3)]
        return [*steady, WorkerSpec(1.5, 200, 2, 0.1, 1.0)]
    if name == "f":  # 3 x 50 MiB steady for 20 s; a newer one bursts 60 MiB every 80 ms
        # (allocate, hold 40 ms, free; the fill itself is slower under emulation), each burst
        # over the soft limit, and keeps 2 MiB of each: past memory.max within 30 bursts
        steady = [WorkerSpec(0.3 * i, 50, 10, 0.1, 20.0) for i in range(3)]
        burster = WorkerSpec(1.5, 0, 0, 0.0, 0.0, bursts=30, burst_mib=60, burst_keep_mib=2)
        return [*steady, burster]
    if name == "g":  # 120 tiny workers, 30 ms apart, 3 MiB each in 1 MiB steps, 10 s hold:
        # 360 MiB wanted, more with each forked interpreter's own pages; the hold outlasts the
        # forking (about 0.1 s a fork under emulation), so most are alive at once
        return [WorkerSpec(0.03 * i, 3, 1, 0.05, 10.0) for i in range(120)]
    raise ValueError(f"unknown scenario {name!r}")


def set_comm(name: str) -> None:
    """Name the process (what earlyoom's --prefer/--avoid and the kernel's log see)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


SLOT = struct.Struct("qd")  # progress units, SIGTERM arrival (monotonic, 0 = none)


def _worker(
    index: int, spec: WorkerSpec, slots: mmap.mmap, shm_dir: Path, cgroup: Path | None
) -> None:
    if cgroup is not None:  # before the first allocation, so everything is charged there
        Path(cgroup, "cgroup.procs").write_text("0")
    set_comm("storm-worker")
    # the pool's -1000 is inherited through fork: workers must be ordinary OOM candidates
    Path("/proc/self/oom_score_adj").write_text("0")
    data_file = shm_dir / f"w{index}"
    request = shm_dir / f"req-{index}-{spec.shm_mib}"

    def cleanup() -> None:
        """Everything written for this worker: the request first (so the loader drops a
        file it finishes later), the file being written, the file."""
        for path in (request, shm_dir / f"w{index}.tmp", data_file):
            with contextlib.suppress(OSError):
                path.unlink()

    def on_term(_signum: int, _frame: Any) -> None:
        SLOT.pack_into(slots, index * SLOT.size, progress, time.monotonic())
        cleanup()  # a graceful stop lets the worker delete its shared data (scenario d)
        os._exit(143)

    progress = 0
    signal.signal(signal.SIGTERM, on_term)
    held: list[Any] = []
    if spec.shm_mib:
        request.touch()
        deadline = time.monotonic() + 20.0
        while not data_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if data_file.exists():
            with open(data_file, "rb") as f:
                m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            sum(m[off] for off in range(0, len(m), 4096))  # fault in: already charged elsewhere
            held.append(m)
        progress += 1
        SLOT.pack_into(slots, index * SLOT.size, progress, 0.0)
    size = 0
    while size < spec.target_mib:
        step = min(spec.step_mib, spec.target_mib - size)
        held.append(b"\1" * (step * MiB))  # filled: every page touched and charged
        size += step
        progress += 1
        SLOT.pack_into(slots, index * SLOT.size, progress, 0.0)
        if spec.step_interval:
            time.sleep(spec.step_interval)
    for _ in range(spec.bursts):
        burst = b"\1" * (spec.burst_mib * MiB)
        time.sleep(BURST_PERIOD / 2)
        held.append(burst[: spec.burst_keep_mib * MiB])  # a copy: the burst itself is freed
        del burst
        progress += 1
        SLOT.pack_into(slots, index * SLOT.size, progress, 0.0)
        time.sleep(BURST_PERIOD / 2)
    for _ in range(round(spec.hold / TICK)):
        time.sleep(TICK)
        progress += 1
        SLOT.pack_into(slots, index * SLOT.size, progress, 0.0)
    cleanup()
    os._exit(0)


def pool_main(args: argparse.Namespace) -> int:
    """Fork the scenario's workers on schedule, reap them, write per-worker outcomes."""
    set_comm("storm-pool")
    with contextlib.suppress(OSError):  # the harness must outlive every kill to report
        Path("/proc/self/oom_score_adj").write_text("-1000")
    specs = scenario_workers(args.scenario)
    slots = mmap.mmap(-1, SLOT.size * len(specs))
    t0 = time.monotonic() + 0.2
    pids: dict[int, int] = {}
    rows: list[dict[str, Any]] = [{} for _ in specs]
    nxt = 0
    while nxt < len(specs) or pids:
        now = time.monotonic()
        if nxt < len(specs) and now >= t0 + specs[nxt].start:
            pid = os.fork()
            if pid == 0:
                try:
                    _worker(nxt, specs[nxt], slots, args.shm_dir, args.worker_cgroup)
                finally:
                    os._exit(70)
            pids[pid] = nxt
            rows[nxt] = {"index": nxt, "pid": pid, "started": time.monotonic()}
            nxt += 1
            continue
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid, status = 0, 0
        if pid == 0:
            time.sleep(0.005)
            continue
        if pid not in pids:
            continue
        i = pids.pop(pid)
        progress, term_at = SLOT.unpack_from(slots, i * SLOT.size)
        if os.WIFEXITED(status):
            code = os.WEXITSTATUS(status)
            outcome = "finished" if code == 0 else ("SIGTERM" if code == 143 else f"exit {code}")
        else:
            outcome = signal.Signals(os.WTERMSIG(status)).name
        rows[i].update(
            ended=time.monotonic(),
            outcome=outcome,
            progress=progress,
            planned=specs[i].planned_units,
            term_at=term_at or None,
        )
    args.results.write_text(json.dumps({"t0": t0, "workers": rows}) + "\n")
    return 0


def loader_main(args: argparse.Namespace) -> int:
    """Scenario d's data owner: writes each worker's file in tmpfs, so it is charged here.

    Workers ask with an empty ``req-I-MIB`` file; the loader writes ``wI.tmp`` and
    renames it to ``wI``. The files outlive their readers unless a reader removes its own on
    exit (what a SIGTERM allows and a SIGKILL does not). A reader stopped before its file
    was done removes its request and the ``.tmp``: the loader's rename then fails, or, if the
    rename came first, the loader sees the request gone and drops the file itself.
    """
    set_comm("storm-loader")
    done: set[str] = set()
    chunk = b"\2" * MiB
    while not Path(args.stop_file).exists():
        for req in sorted(args.shm_dir.glob("req-*")):
            if req.name in done:
                continue
            done.add(req.name)
            _, index, mib = req.name.split("-")
            tmp, final = args.shm_dir / f"w{index}.tmp", args.shm_dir / f"w{index}"
            try:
                with open(tmp, "wb") as f:
                    for _ in range(int(mib)):
                        f.write(chunk)
                tmp.rename(final)
                if not req.exists():  # its reader stopped meanwhile: nobody else removes it
                    final.unlink(missing_ok=True)
            except OSError as exc:  # the reader removed the .tmp: the rename has nothing
                print(f"loader: w{index}: {exc}", file=sys.stderr)
        time.sleep(0.02)
    return 0
