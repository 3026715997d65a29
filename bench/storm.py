"""Memory storms on the real kernel: oomguard vs a polling guard vs earlyoom vs the kernel alone.

    .venv/bin/python bench/storm.py            # one VM boot, all scenarios x contenders, ~10 min

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
import contextlib
import ctypes
import gzip
import json
import mmap
import os
import shlex
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MiB = 2**20
CGROOT = Path("/sys/fs/cgroup")
BENCH_CG = CGROOT / "storm"
SHM_DIR = Path("/tmp/storm-shm")  # a tmpfs the driver mounts inside the VM
TICK = 0.1  # one progress unit = one allocation step or 0.1 s of holding
SAMPLE_INTERVAL = 0.01
RUN_TIMEOUT = 90.0  # per scenario x contender, inside the VM
POLL_FLAGS = ["--monitors", "threshold", "--threshold-interval", "0.25", "--no-memory-high"]
CONTENDERS = ("none", "poll-250ms", "earlyoom", "oomguard")
EXTRA_CONTENDERS = {"d": ("oomguard-parent",)}
LABELS = {
    "none": "kernel alone",
    "poll-250ms": "oomguard threshold-only, 250 ms poll",
    "earlyoom": "earlyoom 1.7",
    "oomguard": "oomguard (event + threshold 0.1 s)",
    "oomguard-parent": "oomguard guarding the parent cgroup",
}
SHORT = {
    "a": "(a) staggered pool",
    "b": "(b) fast balloon",
    "c": "(c) many small",
    "d": "(d) escaped shm",
    "e": "(e) slow leak",
}
SCENARIOS = {
    "a": "staggered pool outgrows the limit",
    "b": "one new process balloons fast",
    "c": "many small short-lived workers",
    "d": "memory escapes via shared memory (tmpfs charged to a sibling)",
    "e": "slow leak",
}


# --------------------------------------------------------------------------- workload


@dataclass(frozen=True)
class WorkerSpec:
    start: float  # seconds after the pool's start
    target_mib: int
    step_mib: int
    step_interval: float
    hold: float
    shm_mib: int = 0  # scenario d: map (and read) a file of this size written by the loader

    @property
    def planned_units(self) -> int:
        steps = -(-self.target_mib // self.step_mib) if self.step_mib else 0
        return steps + round(self.hold / TICK) + (1 if self.shm_mib else 0)


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

    def cleanup() -> None:
        with contextlib.suppress(OSError):
            data_file.unlink()

    def on_term(_signum: int, _frame: Any) -> None:
        SLOT.pack_into(slots, index * SLOT.size, progress, time.monotonic())
        cleanup()  # a graceful stop lets the worker delete its shared data (scenario d)
        os._exit(143)

    progress = 0
    signal.signal(signal.SIGTERM, on_term)
    held: list[Any] = []
    if spec.shm_mib:
        (shm_dir / f"req-{index}-{spec.shm_mib}").touch()
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
    renames it to ``wI``. It never deletes: the files outlive their readers unless a
    reader removes its own on exit (what a SIGTERM allows and a SIGKILL does not).
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
            tmp = args.shm_dir / f"w{index}.tmp"
            try:
                with open(tmp, "wb") as f:
                    for _ in range(int(mib)):
                        f.write(chunk)
                tmp.rename(args.shm_dir / f"w{index}")
            except OSError as exc:
                print(f"loader: w{index}: {exc}", file=sys.stderr)
        time.sleep(0.02)
    return 0


# --------------------------------------------------------------------------- in the VM


def cg_write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def read_kv(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                out[key] = int(value)
    return out


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable")


def spawn_in(cgroup: Path, argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    procs = str(cgroup / "cgroup.procs")

    def enter() -> None:
        fd = os.open(procs, os.O_WRONLY)
        os.write(fd, b"0")
        os.close(fd)

    out = open(log, "ab")  # noqa: SIM115 - handed to the child, closed with us
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, preexec_fn=enter)


def remove_tree(cg: Path) -> None:
    if not cg.exists():
        return
    with contextlib.suppress(OSError):
        cg_write(cg / "cgroup.kill", "1")
    for _ in range(300):
        if not (cg / "cgroup.procs").exists() or not read_pids(cg):
            break
        time.sleep(0.01)
    for child in sorted(cg.rglob("*"), key=lambda p: -len(p.parts)):
        if child.is_dir():
            with contextlib.suppress(OSError):
                child.rmdir()
    with contextlib.suppress(OSError):
        cg.rmdir()


def read_pids(cg: Path) -> list[int]:
    """Every pid in ``cg``'s subtree; cgroups vanishing meanwhile are skipped."""
    pids: list[int] = []
    for top, _dirs, files in os.walk(cg):
        if "cgroup.procs" in files:
            with contextlib.suppress(OSError, ValueError):
                pids += [int(x) for x in Path(top, "cgroup.procs").read_text().split()]
    return pids


class Sampler(threading.Thread):
    """Every 10 ms: the scenario cgroup's memory.current and the guard's CPU time."""

    def __init__(self, cgroup: Path) -> None:
        super().__init__(daemon=True)
        self.cgroup = cgroup
        self.guard_pid: int | None = None
        self.samples: list[tuple[float, int]] = []
        self.cpu: list[tuple[float, float, bool]] = []  # time, guard cpu s, workload running
        self.stop = threading.Event()

    def run(self) -> None:
        current = self.cgroup / "memory.current"
        while not self.stop.is_set():
            now = time.monotonic()
            with contextlib.suppress(OSError, ValueError):
                self.samples.append((now, int(current.read_text())))
            if self.guard_pid is not None:
                cpu = cpu_seconds(self.guard_pid)
                if cpu is not None:
                    busy = any(True for _ in _worker_pids(self.cgroup))
                    self.cpu.append((now, cpu, busy))
            self.stop.wait(SAMPLE_INTERVAL)


def _worker_pids(cg: Path) -> Iterator[int]:
    for pid in read_pids(cg):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "storm-worker":
                yield pid


def earlyoom_argv(threshold_kib: int) -> list[str]:
    return [
        "earlyoom",
        "-M",
        str(threshold_kib),
        "-r",
        "60",
        "--prefer",
        "^storm-worker$",
        "--avoid",
        "^(storm-pool|storm-loader|oomguard|python.*|earlyoom|sh|bash)$",
    ]


def run_one(scenario: str, contender: str, cfg: argparse.Namespace, raw: Path) -> dict[str, Any]:
    """One scenario under one contender, in a fresh cgroup ``storm/<scenario>-<contender>``."""
    high, limit = cfg.memory_high, cfg.memory_max
    tag = f"{scenario}-{contender}"
    parent = BENCH_CG / tag
    remove_tree(parent)
    parent.mkdir()
    cg_write(parent / "cgroup.subtree_control", "+memory")
    for f in SHM_DIR.glob("*"):
        f.unlink()
    if scenario == "d":
        cg_write(parent / "memory.max", str(limit))  # the 'node': guarded cgroup + data owner
    log = raw / f"{tag}.log"
    log.write_text("")
    results = raw / f"{tag}.pool.json"
    results.unlink(missing_ok=True)
    report = raw / f"{tag}.report.json"
    report.unlink(missing_ok=True)
    py = sys.executable
    pool_argv = [py, str(Path(__file__).resolve()), "pool", "--scenario", scenario]
    pool_argv += ["--results", str(results), "--shm-dir", str(SHM_DIR)]
    vmstat0 = read_kv(Path("/proc/vmstat")).get("oom_kill", 0)
    loader: subprocess.Popen[bytes] | None = None
    stop_file = raw / f"{tag}.stop"
    stop_file.unlink(missing_ok=True)
    if scenario == "d":
        owner = parent / "data-owner"
        owner.mkdir()
        loader_argv = [py, str(Path(__file__).resolve()), "loader", "--shm-dir", str(SHM_DIR)]
        loader = spawn_in(owner, [*loader_argv, "--stop-file", str(stop_file)], log)
    sampler = Sampler(parent)
    sampler.start()
    guard: subprocess.Popen[bytes] | None = None
    waited: subprocess.Popen[bytes]
    extra: dict[str, Any] = {}
    oomguard = str(ROOT / ".venv" / "bin" / "oomguard")
    common = ["--memory-high", str(high), "--memory-max", str(limit), "--report", str(report)]
    started = time.monotonic()
    if contender in ("none", "earlyoom", "oomguard-parent"):
        work = parent / "work"
        work.mkdir()
        cg_write(work / "memory.max", str(limit))
        if contender == "earlyoom":
            available = mem_available()
            threshold_kib = max(1, (available - high) // 1024)
            extra["earlyoom_mem_available_at_start"] = available
            extra["earlyoom_threshold_kib"] = threshold_kib
            argv = earlyoom_argv(threshold_kib)
            extra["guard_argv"] = argv
            guard = subprocess.Popen(
                argv,
                stdout=open(raw / f"{tag}.earlyoom.log", "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
            time.sleep(0.5)
        elif contender == "oomguard-parent":
            argv = [oomguard, "guard", "--cgroup", str(parent), *common]
            extra["guard_argv"] = argv
            guard = subprocess.Popen(
                argv,
                stdout=open(raw / f"{tag}.guard.log", "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
            _wait_for_high(parent, high, 30.0)
        sampler.guard_pid = guard.pid if guard else None
        if contender == "oomguard-parent":
            # The supervisor stays outside the guarded subtree (like the kubelet outside
            # kubepods): `guard --cgroup` protects nobody, and the pool must survive to report.
            with open(log, "ab") as out:
                waited = subprocess.Popen(
                    [*pool_argv, "--worker-cgroup", str(work)], stdout=out, stderr=out
                )
        else:
            waited = spawn_in(work, pool_argv, log)
    else:
        argv = [oomguard, "guard", "--parent", str(parent), *common]
        if contender == "poll-250ms":
            argv += POLL_FLAGS
        extra["guard_argv"] = argv
        with open(log, "ab") as out:
            guard = subprocess.Popen([*argv, "--", *pool_argv], stdout=out, stderr=out)
        sampler.guard_pid = guard.pid
        waited = guard
    timed_out = False
    try:
        waited.wait(RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        timed_out = True
        for f in SHM_DIR.glob("*"):  # frees escaped memory so a wedged run can end
            f.unlink()
        with contextlib.suppress(OSError):
            cg_write(parent / "cgroup.kill", "1")
        if guard is not None and guard is not waited:
            guard.kill()
        waited.wait(30)
    ended = time.monotonic()
    if guard is not None and guard is not waited:
        guard.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            guard.wait(30)
    elif guard is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            guard.wait(30)
    sampler.stop.set()
    sampler.join()
    events = read_kv(parent / "memory.events")
    stop_file.touch()
    if loader is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            loader.wait(5)
        if loader.poll() is None:
            loader.kill()
    remove_tree(parent)
    for f in SHM_DIR.glob("*"):
        f.unlink()
    vmstat1 = read_kv(Path("/proc/vmstat")).get("oom_kill", 0)
    pool = json.loads(results.read_text()) if results.exists() else None
    guard_report = json.loads(report.read_text()) if report.exists() else None
    if guard_report is not None:
        guard_report = {
            "victims": guard_report.get("victims"),
            "decisions": [
                {k: d[k] for k in ("trigger", "detection_to_decision_seconds", "outcome")}
                for d in guard_report.get("decisions", [])
            ],
            "latencies_seconds": guard_report.get("latencies_seconds"),
            "memory_events": guard_report.get("memory_events"),
            "errors": guard_report.get("errors"),
        }
    return {
        "scenario": scenario,
        "contender": contender,
        "started": started,
        "ended": ended,
        "timed_out": timed_out,
        "memory_events": events,
        "vmstat_oom_kill": vmstat1 - vmstat0,
        "samples": sampler.samples,
        "guard_cpu": sampler.cpu,
        "pool": pool,
        "guard_report": guard_report,
        "earlyoom_log": _tail(raw / f"{tag}.earlyoom.log") if contender == "earlyoom" else None,
        **extra,
    }


def _tail(path: Path, lines: int = 40) -> list[str]:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace").splitlines()[-lines:]
    return []


def _wait_for_high(cg: Path, high: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if int((cg / "memory.high").read_text()) == high:
                return
        time.sleep(0.05)
    raise RuntimeError(f"guard did not set memory.high on {cg} within {timeout}s")


def idle_cost(cfg: argparse.Namespace, raw: Path) -> list[dict[str, Any]]:
    """CPU and RSS of each guard over ``--idle-seconds`` on an idle guarded cgroup, side by side."""
    oomguard = str(ROOT / ".venv" / "bin" / "oomguard")
    high, limit = str(cfg.memory_high), str(cfg.memory_max)
    setups = {
        "oomguard": [],
        "oomguard-event-only": ["--monitors", "event"],
        "poll-250ms": POLL_FLAGS,
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    parents: list[Path] = []
    sleep_for = str(int(cfg.idle_seconds + 120))
    for name, flags in setups.items():
        parent = BENCH_CG / f"idle-{name}"
        remove_tree(parent)
        parent.mkdir()
        parents.append(parent)
        argv = [oomguard, "guard", "--parent", str(parent), "--memory-high", high]
        argv += ["--memory-max", limit, *flags, "--", "sleep", sleep_for]
        procs[name] = subprocess.Popen(
            argv,
            stdout=open(raw / f"idle-{name}.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
    idle_cg = BENCH_CG / "idle-earlyoom"
    remove_tree(idle_cg)
    idle_cg.mkdir()
    parents.append(idle_cg)
    cg_write(idle_cg / "memory.max", limit)
    sleeper = spawn_in(idle_cg, ["sleep", sleep_for], raw / "idle-earlyoom.log")
    procs["earlyoom"] = subprocess.Popen(
        earlyoom_argv(max(1, (mem_available() - cfg.memory_high) // 1024)),
        stdout=open(raw / "idle-earlyoom.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    _settle(procs, 40.0)  # imports and start-up are slow under emulation
    start = {n: cpu_seconds(p.pid) for n, p in procs.items()}
    t0 = time.monotonic()
    peak = {n: 0 for n in procs}
    while time.monotonic() - t0 < cfg.idle_seconds:
        for n, p in procs.items():
            peak[n] = max(peak[n], rss_bytes(p.pid) or 0)
        time.sleep(1.0)
    elapsed = time.monotonic() - t0
    out = []
    for n, p in procs.items():
        end = cpu_seconds(p.pid)
        s = start[n]
        out.append(
            {
                "contender": n,
                "seconds": elapsed,
                "cpu_seconds": None if end is None or s is None else end - s,
                "rss_bytes": rss_bytes(p.pid),
                "peak_rss_bytes": peak[n],
                "alive": p.poll() is None,
            }
        )
        p.send_signal(signal.SIGTERM)
    for p in procs.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(30)
    sleeper.kill()
    sleeper.wait()
    for parent in parents:
        remove_tree(parent)
    return out


def _settle(procs: dict[str, subprocess.Popen[bytes]], limit: float) -> None:
    """Wait until every process used < 2 % CPU over the last 2 s (start-up over), or ``limit``."""
    deadline = time.monotonic() + limit
    time.sleep(5.0)
    while time.monotonic() < deadline:
        before = {n: cpu_seconds(p.pid) or 0.0 for n, p in procs.items()}
        time.sleep(2.0)
        after = {n: cpu_seconds(p.pid) or 0.0 for n, p in procs.items()}
        if all(after[n] - before[n] < 0.04 for n in procs):
            return


def in_vm_main(args: argparse.Namespace) -> int:
    raw: Path = args.raw
    raw.mkdir(parents=True, exist_ok=True)
    subtree = (CGROOT / "cgroup.subtree_control").read_text()
    if "memory" not in subtree:
        cg_write(CGROOT / "cgroup.subtree_control", "+memory")
    remove_tree(BENCH_CG)
    BENCH_CG.mkdir()
    cg_write(BENCH_CG / "cgroup.subtree_control", "+memory")
    SHM_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1g", "storm-shm", str(SHM_DIR)], check=True)
    info: dict[str, Any] = {
        "kernel": os.uname().release,
        "cpus": os.cpu_count(),
        "mem_total": int(read_kv_meminfo()["MemTotal"]),
        "earlyoom": _earlyoom_version(),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
    }
    runs: list[dict[str, Any]] = []
    t0 = time.monotonic()
    for scenario in args.scenarios:
        for contender in [*args.contenders, *EXTRA_CONTENDERS.get(scenario, ())]:
            if contender not in args.contenders and not args.extras:
                continue
            print(f"storm: scenario {scenario} / {contender} ...", flush=True)
            result = run_one(scenario, contender, args, raw)
            runs.append(result)
            print(
                f"storm: {scenario}/{contender}: oom_kill {result['memory_events'].get('oom_kill')}"
                f" vmstat {result['vmstat_oom_kill']}"
                f" in {result['ended'] - result['started']:.1f}s",
                flush=True,
            )
            (raw / "runs.partial.json").write_text(json.dumps(runs))
    idle = idle_cost(args, raw) if args.idle_seconds > 0 else []
    info["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    info["vm_seconds"] = time.monotonic() - t0
    settings = {"memory_high": args.memory_high, "memory_max": args.memory_max}
    out = {"info": info, "settings": settings, "runs": runs, "idle": idle}
    (raw / "storm-raw.json").write_text(json.dumps(out) + "\n")
    subprocess.run(["umount", str(SHM_DIR)], check=False)
    remove_tree(BENCH_CG)
    return 0


def _earlyoom_version() -> str:
    done = subprocess.run(["earlyoom", "-v"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0]


def read_kv_meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        out[key] = int(rest.split()[0]) * 1024
    return out


# --------------------------------------------------------------------------- analysis


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
    relief = (spans[0][1] - spans[0][0]) if spans else None
    busy = [(t, c) for t, c, b in run["guard_cpu"] if b]
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
        "peak": peak,
        "cpu_s": cpu,
        "timed_out": run["timed_out"],
        "pool_missing": run.get("pool") is None,
    }


def _count(items: Iterator[str] | Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


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
        "breach -> victim stopped p50 (ms) | peak (MiB) | guard CPU (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
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
            f"{_fmt(r['cpu_s'])} |"
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
            "oomguard's main thread wakes every 0.1 s to check its command, the threshold "
            "monitor polls memory.current and memory.stat every 0.1 s, or 0.25 s).",
            "",
            "| guard | CPU over the window (s) | CPU % of one core | RSS (MiB) |",
            "|---|---|---|---|",
        ]
        for i in data["idle"]:
            cpu = i["cpu_seconds"]
            pct = None if cpu is None else 100 * cpu / i["seconds"]
            lines.append(
                f"| {i['contender']} | {_fmt(cpu, '.2f')} | {_fmt(pct, '.2f', ' %')} | "
                f"{(i['rss_bytes'] or 0) / MiB:.1f} |"
            )
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
        "work preserved (mean) | breach -> victim stopped p50 / p95 / max (ms, a b c e) | "
        "oomguard's own detection -> signal p50 / max (ms, a b c e) | guard CPU, all runs (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in contenders:
        mine = [r for r in rows if r["contender"] == c]
        main = sum(r["oom_kills"] for r in mine if r["scenario"] != "d")
        d = sum(r["oom_kills"] for r in mine if r["scenario"] == "d")
        reactions = [x for r in mine if r["scenario"] != "d" for x in r["reactions"]]
        kept = [r["preserved"] for r in mine if r["preserved"] is not None]
        cpu = [r["cpu_s"] for r in mine if r["cpu_s"] is not None]
        own = [x for r in mine if r["scenario"] != "d" for x in r["guard_signal"]]
        main_txt = "-" if all(r["scenario"] == "d" for r in mine) else str(main)
        lines.append(
            f"| {LABELS.get(c, c)} | {main_txt} | "
            f"{d if any(r['scenario'] == 'd' for r in mine) else '-'} | "
            f"{sum(r['victims'] for r in mine)} | "
            f"{_fmt(100 * statistics.mean(kept) if kept else None, '.0f', ' %')} | "
            f"{_ms(percentile(reactions, 0.5))} / {_ms(percentile(reactions, 0.95))} / "
            f"{_ms(max(reactions) if reactions else None)} | "
            f"{_ms(percentile(own, 0.5))} / {_ms(max(own) if own else None)} | "
            f"{_fmt(sum(cpu) if cpu else None)} |"
        )
    return lines


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


# --------------------------------------------------------------------------- host


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

    run = sub.add_parser("run")
    sizes(run)
    run.add_argument("--out", default=str(ROOT / "docs" / "bench"))
    run.add_argument("--raw", help="keep the VM's raw files here (default: a /tmp folder)")
    run.add_argument("--vm-memory", default="2G")
    run.add_argument("--timeout", type=int, default=1500)
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
