"""The driver inside the VM: every scenario under every contender in a fresh cgroup, sampled
every 10 ms, then the idle cost of each guard side by side; writes ``storm-raw.json``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stormlib.cgroups import cg_write, read_kv, read_pids, remove_tree, spawn_in
from stormlib.plan import (
    BASE,
    BENCH_CG,
    CGROOT,
    EXTRA_CONTENDERS,
    POLL_FLAGS,
    ROOT,
    SAMPLE_INTERVAL,
    SHM_DIR,
    STORM_SCRIPT,
)
from stormlib.proc import (
    WakeupCounter,
    cpu_seconds,
    mem_available,
    peak_rss_bytes,
    read_kv_meminfo,
    rss_bytes,
    started_up,
)


class Sampler(threading.Thread):
    """Every 10 ms: the scenario cgroup's memory.current and the guard's CPU time."""

    def __init__(self, cgroup: Path) -> None:
        super().__init__(daemon=True)
        self.cgroup = cgroup
        self.guard_pid: int | None = None
        self.samples: list[tuple[float, int]] = []
        self.cpu: list[tuple[float, float, bool]] = []  # time, guard cpu s, workload running
        self.wakeups: list[tuple[float, int, bool]] = []  # time, guard wake-ups, workload running
        self.guard_peak_rss = 0  # the guard's VmHWM, bytes
        self.stop = threading.Event()
        self._woken: WakeupCounter | None = None

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
                    if self._woken is None or self._woken.pid != self.guard_pid:
                        self._woken = WakeupCounter(self.guard_pid)
                    woken = self._woken.read()
                    if woken is not None:
                        self.wakeups.append((now, woken, busy))
                    peak = peak_rss_bytes(self.guard_pid) or 0
                    self.guard_peak_rss = max(self.guard_peak_rss, peak)
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


def guard_command(contender: str, cfg: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """How to start oomguard for ``contender``: this checkout's, or for the base contender
    the other checkout's sources (``--base-src``) on PYTHONPATH, ahead of this one's."""
    env = dict(os.environ)
    if contender != BASE:
        return [str(ROOT / ".venv" / "bin" / "oomguard")], env
    env["PYTHONPATH"] = str(cfg.base_src)
    return [sys.executable, "-m", "oomguard"], env


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
    pool_argv = [py, str(STORM_SCRIPT), "pool", "--scenario", scenario]
    pool_argv += ["--results", str(results), "--shm-dir", str(SHM_DIR)]
    vmstat0 = read_kv(Path("/proc/vmstat")).get("oom_kill", 0)
    loader: subprocess.Popen[bytes] | None = None
    stop_file = raw / f"{tag}.stop"
    stop_file.unlink(missing_ok=True)
    if scenario == "d":
        owner = parent / "data-owner"
        owner.mkdir()
        loader_argv = [py, str(STORM_SCRIPT), "loader", "--shm-dir", str(SHM_DIR)]
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
            try:
                _wait_for_high(parent, high, cfg.run_timeout)  # start-up: up to a minute
            except RuntimeError:  # undo this run before the caller records it as failed
                guard.kill()
                guard.wait()
                sampler.stop.set()
                sampler.join()
                if loader is not None:
                    loader.kill()
                    loader.wait()
                remove_tree(parent)
                raise
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
        command, env = guard_command(contender, cfg)
        argv = [*command, "guard", "--parent", str(parent), *common]
        if contender == "poll-250ms":
            argv += POLL_FLAGS
        extra["guard_argv"] = argv
        with open(log, "ab") as out:
            guard = subprocess.Popen([*argv, "--", *pool_argv], stdout=out, stderr=out, env=env)
        sampler.guard_pid = guard.pid
        waited = guard
    timed_out = False
    try:
        waited.wait(cfg.run_timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        for f in SHM_DIR.glob("*"):  # frees escaped memory so a wedged run can end
            f.unlink()
        with contextlib.suppress(OSError):
            cg_write(parent / "cgroup.kill", "1")
        if guard is not None and guard is not waited:
            guard.kill()
        try:
            waited.wait(30)
        except subprocess.TimeoutExpired:  # a guard still starting up: the run is lost anyway
            waited.kill()
            waited.wait()
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
            "started_at_monotonic_seconds": guard_report.get("started_at_monotonic_seconds"),
            "decisions": [
                {
                    k: d.get(k)
                    for k in (
                        "trigger",
                        "detection_to_decision_seconds",
                        "outcome",
                        "trace_seconds",
                    )
                }
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
        "guard_wakeups": sampler.wakeups,
        "guard_peak_rss": sampler.guard_peak_rss,
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
    high, limit = str(cfg.memory_high), str(cfg.memory_max)
    setups: dict[str, list[str]] = {
        "oomguard": [],
        "oomguard-event-only": ["--monitors", "event"],
        "poll-250ms": POLL_FLAGS,
    }
    if cfg.base_src:
        setups[BASE] = []
        setups[f"{BASE}-event-only"] = ["--monitors", "event"]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    parents: list[Path] = []
    sleep_for = str(int(cfg.idle_seconds + 120))
    for name, flags in setups.items():
        parent = BENCH_CG / f"idle-{name}"
        remove_tree(parent)
        parent.mkdir()
        parents.append(parent)
        command, env = guard_command(BASE if name.startswith(BASE) else "oomguard", cfg)
        argv = [*command, "guard", "--parent", str(parent), "--memory-high", high]
        argv += ["--memory-max", limit, *flags, "--", "sleep", sleep_for]
        procs[name] = subprocess.Popen(
            argv,
            env=env,
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
    settled = _settle(procs, cfg.settle_seconds)  # imports and start-up are slow under emulation
    start = {n: cpu_seconds(p.pid) for n, p in procs.items()}
    counters = {n: WakeupCounter(p.pid) for n, p in procs.items()}
    woken = {n: c.read() for n, c in counters.items()}
    t0 = time.monotonic()
    peak = {n: 0 for n in procs}
    while time.monotonic() - t0 < cfg.idle_seconds:
        for n, p in procs.items():
            peak[n] = max(peak[n], rss_bytes(p.pid) or 0)
            counters[n].read()  # every second, so a thread that ends is still counted
        time.sleep(1.0)
    elapsed = time.monotonic() - t0
    out = []
    for n, p in procs.items():
        end = cpu_seconds(p.pid)
        s = start[n]
        w0, w1 = woken[n], counters[n].read()
        out.append(
            {
                "contender": n,
                "seconds": elapsed,
                "cpu_seconds": None if end is None or s is None else end - s,
                "rss_bytes": rss_bytes(p.pid),
                "peak_rss_bytes": max(peak[n], peak_rss_bytes(p.pid) or 0),
                "wakeups": None if w0 is None or w1 is None else w1 - w0,
                "alive": p.poll() is None,
                "settled": settled,  # False: some guard was still busy when the window began
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


def _settle(procs: dict[str, subprocess.Popen[bytes]], limit: float) -> bool:
    """Wait until every process is past its start-up (``proc.started_up`` over the last
    2 s), or ``limit``; whether they settled (a window measured before they did shows
    start-up, not idling)."""
    deadline = time.monotonic() + limit
    time.sleep(5.0)
    while time.monotonic() < deadline:
        before = {n: cpu_seconds(p.pid) or 0.0 for n, p in procs.items()}
        time.sleep(2.0)
        after = {n: cpu_seconds(p.pid) or 0.0 for n, p in procs.items()}
        if started_up({n: after[n] - before[n] for n in procs}, 2.0):
            return True
    return False


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
    idle: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    t0 = time.monotonic()
    # repetitions outermost: a drift in the host's load falls on every contender alike
    for repetition in range(args.repetitions):
        for scenario in args.scenarios:
            for contender in [*args.contenders, *EXTRA_CONTENDERS.get(scenario, ())]:
                if contender not in args.contenders and not args.extras:
                    continue
                print(f"storm: #{repetition} scenario {scenario} / {contender} ...", flush=True)
                try:
                    result = run_one(scenario, contender, args, raw)
                except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                    # one run that cannot start must not cost the other runs: on the page
                    failed.append({"repetition": repetition, "run": f"{scenario}/{contender}"})
                    failed[-1]["error"] = str(exc)
                    print(f"storm: #{repetition} {scenario}/{contender} FAILED: {exc}", flush=True)
                    continue
                result["repetition"] = repetition
                runs.append(result)
                print(
                    f"storm: #{repetition} {scenario}/{contender}: oom_kill "
                    f"{result['memory_events'].get('oom_kill')}"
                    f" vmstat {result['vmstat_oom_kill']}"
                    f" in {result['ended'] - result['started']:.1f}s",
                    flush=True,
                )
                (raw / "runs.partial.json").write_text(json.dumps(runs))
        if args.idle_seconds > 0:
            idle += [{**i, "repetition": repetition} for i in idle_cost(args, raw)]
    info["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    info["failed_runs"] = failed
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
