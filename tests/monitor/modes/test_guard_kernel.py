"""`oomguard guard` on a real cgroup v2 kernel (the VM here): the issue's acceptance runs.

The workload is the demo's staggered pool: 6 forked workers, 0.3 s apart, each growing to
80 MiB in 10 MiB steps every 150 ms and holding it 6 s (longer than the demo's 3 s, so the
overlap survives software emulation stretching forks and steps). memory.max is 300Mi:
unguarded, four or more workers overlap at full size (320 MiB or more) and the kernel OOM
killer fires. Guarded with memory.high 220Mi, the newest are stopped until usage is back
under 220Mi - buffer, and the two oldest (160 MiB plus interpreter overhead) finish.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oomguard.monitor.kernel.cgroupfs import Cgroup, find_cgroup2_mount

pytestmark = pytest.mark.kernel

DEMO_WORKLOAD = str(Path(__file__).resolve().parents[3] / "demo" / "workload.py")  # by path
WORKLOAD = [sys.executable, DEMO_WORKLOAD, "--quiet", "--hold", "6"]
LIMITS = ["--memory-high", "220Mi", "--memory-max", "300Mi", "--grace", "1"]


GUARD = [sys.executable, "-m", "oomguard", "guard"]


def guard(*argv, timeout=240, **kw):
    return subprocess.run(
        [*GUARD, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kw,
    )


def load(path):
    return json.loads(Path(path).read_text())


def guard_cgroups():
    return sorted(p.name for p in find_cgroup2_mount().glob("oomguard-*"))


def run_pool(tmp_path, *extra):
    report, results = tmp_path / "report.json", tmp_path / "workers.json"
    proc = guard(
        *LIMITS, *extra, "--report", str(report), "--", *WORKLOAD, "--results", str(results)
    )
    assert report.exists(), proc.stderr
    return proc, load(report), load(results)["workers"]


def test_staggered_pool_newest_stopped_oldest_two_finish_no_oom_kill(tmp_path):
    before = guard_cgroups()
    proc, report, workers = run_pool(tmp_path)
    log = proc.stderr
    print(log)  # shown when the test fails
    print(json.dumps(report["decisions"], indent=1))
    print(json.dumps(workers, indent=1))
    outcome = {w["index"]: w["outcome"] for w in workers}
    index_of = {w["pid"]: w["index"] for w in workers}

    assert report["memory_events"]["final"]["oom_kill"] == 0, log
    assert outcome[0] == "finished" and outcome[1] == "finished", (outcome, log)
    victims = [v for v in report["victims"] if v["signal"]]
    assert victims, log
    killed = {index_of[v["pid"]] for v in victims}
    finished = {i for i, o in outcome.items() if o == "finished"}
    # newest first: every stopped worker started after every finished one
    assert min(killed) > max(finished), (outcome, log)
    assert killed == set(outcome) - finished
    for v in victims:
        assert v["signal"] in ("SIGTERM", "SIGKILL")
        assert v["memory_bytes"] > 0
        assert v["cmdline"][1] == DEMO_WORKLOAD
        assert 0 <= v["detection_to_signal_seconds"] <= v["detection_to_exit_seconds"]
    # within each decision the victims go newest first
    for d in report["decisions"]:
        order = [index_of[p] for p in d["victim_pids"]]
        assert order == sorted(order, reverse=True)
    assert report["latencies_seconds"]["detection_to_decision"]["count"] >= 1
    assert report["memory_events"]["final"]["high"] > 0
    # the pool exits 1 (not every worker finished); oomguard passes its status through
    assert proc.returncode == report["exit_status"] == 1
    # everything it created is gone again
    assert guard_cgroups() == before


def test_same_pool_in_dry_run_gets_kernel_oom_kills(tmp_path):
    """Proof the acceptance test can fail: unguarded, the kernel OOM killer fires."""
    proc, report, workers = run_pool(tmp_path, "--dry-run")
    print(proc.stderr)
    assert report["memory_events"]["final"]["oom_kill"] > 0, proc.stderr
    assert any(w["outcome"] == "killed by SIGKILL" for w in workers)
    # dry run signals nobody, but says whom it would have stopped
    assert all(v["signal"] is None and v["outcome"] == "dry-run" for v in report["victims"])
    assert report["victims"], proc.stderr
    assert report["settings"]["dry_run"] is True


def test_exit_status_passes_through_and_json_logs(tmp_path):
    proc = guard(
        "--memory-high",
        "64Mi",
        "--log-format",
        "json",
        "--",
        sys.executable,
        "-c",
        "import sys; sys.exit(7)",
    )
    assert proc.returncode == 7
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert any(line["msg"] == "guarding command" for line in lines)
    assert any(line["msg"] == "command exited" and line["status"] == 7 for line in lines)


def test_missing_command_exits_127():
    proc = guard("--memory-high", "64Mi", "--", "/nonexistent/command")
    assert proc.returncode == 127
    assert guard_cgroups() == []


def start_guard(*argv, **kw):
    """``oomguard guard`` in the background, its log on stderr."""
    return subprocess.Popen([*GUARD, *argv], stderr=subprocess.PIPE, text=True, **kw)


def exit_status_and_log(oomguard, timeout=300):
    """Wait for ``oomguard`` while reading its log (a full stderr pipe must not be what
    keeps it from exiting); its exit status and log. Fails with the log so far when it
    does not exit within ``timeout``."""
    try:
        _, log = oomguard.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        oomguard.kill()
        _, log = oomguard.communicate()
        raise AssertionError(f"oomguard did not exit within {timeout} s; its log:\n{log}") from None
    return oomguard.returncode, log


def start_guarded_child(tmp_path, on_sigterm, *guard_args):
    """Guard a Python child that installs ``on_sigterm`` as its SIGTERM handler, then waits
    for it to say it is ready (or for oomguard to end first). Returns oomguard's process and
    the ready file. The bound is generous: it costs nothing when the child is ready, and two
    Python starts on an emulated CPU shared with other VMs took over 60 s here."""
    ready = tmp_path / "ready"
    child = (
        "import pathlib, signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, {on_sigterm})\n"
        f"pathlib.Path({str(ready)!r}).write_text('x')\n"
        "time.sleep(120)\n"
    )
    oomguard = start_guard(*guard_args, "--", sys.executable, "-c", child)
    deadline = time.monotonic() + 300
    while not ready.exists() and oomguard.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return oomguard, ready


def test_sigterm_is_forwarded_and_everything_is_undone(tmp_path):
    oomguard, ready = start_guarded_child(
        tmp_path, "lambda *a: sys.exit(42)", "--memory-high", "64Mi", "--memory-max", "128Mi"
    )
    assert ready.exists()
    [name] = guard_cgroups()
    assert Cgroup(find_cgroup2_mount() / name).memory_high().bytes == 64 << 20
    oomguard.send_signal(signal.SIGTERM)
    status, log = exit_status_and_log(oomguard)
    assert status == 42, log
    assert guard_cgroups() == []


def test_command_ignoring_sigterm_is_killed_after_grace(tmp_path):
    oomguard, _ = start_guarded_child(
        tmp_path, "signal.SIG_IGN", "--memory-high", "64Mi", "--grace", "0.5"
    )
    oomguard.send_signal(signal.SIGTERM)
    status, log = exit_status_and_log(oomguard)
    assert status == 128 + signal.SIGKILL, log
    assert guard_cgroups() == []


@pytest.fixture
def scratch_cgroup():
    mount = find_cgroup2_mount()
    cgroup = Cgroup(mount / f"test-guard-{os.getpid()}").create()
    yield cgroup
    for directory, _dirs, _files in os.walk(cgroup.path, topdown=False):
        sub = Cgroup(directory)
        if sub.pids():
            sub.kill()
            deadline = time.monotonic() + 5
            while sub.pids() and time.monotonic() < deadline:
                time.sleep(0.01)
        sub.remove()


def enter(cgroup):
    procs = str(cgroup.file("cgroup.procs"))

    def move():
        with open(procs, "w") as f:
            f.write("0")

    return move


def test_guarding_an_existing_cgroup_restores_its_limits(tmp_path, scratch_cgroup):
    from oomguard.monitor.kernel.memory_limit import MemoryLimit

    scratch_cgroup.set_memory_max(MemoryLimit(500 << 20))
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], preexec_fn=enter(scratch_cgroup)
    )
    report = tmp_path / "r.json"
    oomguard = start_guard(
        "--cgroup",
        str(scratch_cgroup.path),
        "--memory-high",
        "100Mi",
        "--memory-max",
        "200Mi",
        "--report",
        str(report),
    )
    deadline = time.monotonic() + 300  # generous: a loaded emulated CPU starts Python slowly

    def applied() -> bool:
        return scratch_cgroup.memory_high().bytes == 100 << 20

    while not applied() and oomguard.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert applied(), oomguard.stderr.read() if oomguard.poll() is not None else "not yet set"
    assert scratch_cgroup.memory_max() == MemoryLimit(200 << 20)
    oomguard.send_signal(signal.SIGINT)
    status, log = exit_status_and_log(oomguard)
    assert status == 0, log
    assert scratch_cgroup.memory_high().unlimited
    assert scratch_cgroup.memory_max() == MemoryLimit(500 << 20)
    assert sleeper.poll() is None  # nothing over target: nobody stopped
    assert load(report)["command"] is None
    sleeper.kill()
    sleeper.wait()


def test_oomguard_moves_itself_into_a_leaf_when_it_is_alone_in_its_cgroup(scratch_cgroup):
    proc = guard(
        "--memory-high",
        "64Mi",
        "--",
        "sh",
        "-c",
        "cat /proc/self/cgroup; cat /proc/$PPID/cgroup",
        preexec_fn=enter(scratch_cgroup),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    own, parent = proc.stdout.split()
    base = f"0::/{scratch_cgroup.path.name}"
    assert own.startswith(f"{base}/oomguard-")
    assert parent.startswith(f"{base}/oomguard-supervisor-")
    assert "moved oomguard into a leaf cgroup" in proc.stderr
    # undone: memory no longer enabled below, no child cgroups left
    assert "memory" not in scratch_cgroup.subtree_control()
    assert [p for p in scratch_cgroup.path.iterdir() if p.is_dir()] == []


def test_refuses_to_move_processes_it_does_not_own(scratch_cgroup):
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], preexec_fn=enter(scratch_cgroup)
    )
    try:
        proc = guard(
            "--memory-high", "64Mi", "--", "true", preexec_fn=enter(scratch_cgroup), timeout=120
        )
    finally:
        other.kill()
        other.wait()
    assert proc.returncode == 125
    assert "other processes live in it" in proc.stderr
    assert [p for p in scratch_cgroup.path.iterdir() if p.is_dir()] == []
