"""`oomguard monitor --mode sidecar` on a real cgroup v2 kernel (the VM here).

A synthetic pod in the systemd layout: a pod cgroup with memory.max 500Mi (the pod's limit)
and three container cgroups, as the kubelet and containerd would make them (the app's
memory.max 500Mi too: the sidecar waits for a container limit that its pod implies):

- ``cri-containerd-sandbox.scope``: a process named ``pause`` (the pod sandbox);
- ``cri-containerd-app.scope``: the workload, the staggered demo pool (6 forked workers
  0.3 s apart, each growing to 90 MiB and holding it 8 s: 540 MiB at the peak). The long
  hold makes all six overlap at full size even when software emulation stretches the
  forks and steps by seconds; with a 3 s hold a slow run could finish worker 0 before
  worker 5 was full, and the baseline then stayed under the limit;
- ``cri-containerd-sidecar.scope``: oomguard, started as a pod's sidecar would be (no flags
  naming any cgroup: it finds the pod from /proc/self/cgroup and the workload by itself).

Unguarded, the pod hits its limit and the kernel OOM-kills. Guarded (reserve 150Mi, so the
app container gets memory.high 350Mi), the newest workers are stopped first, the pool's main process
and the oldest workers finish, and ``oom_kill`` stays 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from oomguard.monitor.kernel.cgroupfs import Cgroup, find_cgroup2_mount
from oomguard.monitor.kernel.memory_limit import MemoryLimit

pytestmark = pytest.mark.kernel

MI = 2**20
POD_LIMIT = 500 * MI
DEMO_WORKLOAD = str(Path(__file__).resolve().parents[3] / "demo" / "workload.py")  # by path
POOL = [
    sys.executable,
    DEMO_WORKLOAD,
    "--quiet",
    "--workers",
    "6",
    "--worker-mib",
    "90",
    "--stagger",
    "0.3",
    "--hold",
    "8",
]


def enter(cgroup: Cgroup):  # type: ignore[no-untyped-def]
    """preexec_fn: the child joins ``cgroup`` before it execs (nothing escapes)."""
    procs = str(cgroup.file("cgroup.procs"))

    def join() -> None:
        fd = os.open(procs, os.O_WRONLY)
        try:
            os.write(fd, b"0\n")
        finally:
            os.close(fd)

    return join


def remove_tree(cgroup: Cgroup) -> None:
    if not cgroup.exists():
        return
    cgroup.kill()
    deadline = time.monotonic() + 10
    for directory in sorted(cgroup.path.rglob("*"), key=lambda p: -len(p.parts)):
        if directory.is_dir():
            while Cgroup(directory).events().populated and time.monotonic() < deadline:
                time.sleep(0.02)
            directory.rmdir()
    while cgroup.events().populated and time.monotonic() < deadline:
        time.sleep(0.02)
    cgroup.path.rmdir()


class Pod:
    """The synthetic pod's cgroups."""

    def __init__(self, top: Cgroup) -> None:
        uid = str(uuid.uuid4())
        self.top = top
        self.pod = top.child(f"kubepods-burstable-pod{uid.replace('-', '_')}.slice").create()
        self.pod.set_memory_max(MemoryLimit(POD_LIMIT))
        self.pod.enable_memory_for_children()
        self.sandbox = self.pod.child("cri-containerd-sandbox.scope").create()
        self.app = self.pod.child("cri-containerd-app.scope").create()
        # as the runtime limits a container with a limit (the pod's is the sum of them all):
        # the app's own limit, the pod's, is the tightest
        self.app.set_memory_max(MemoryLimit(POD_LIMIT))
        self.sidecar = self.pod.child("cri-containerd-sidecar.scope").create()

    def oom_kills(self) -> int:
        return self.pod.memory_events().oom_kill


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[Pod]:
    root = Cgroup(find_cgroup2_mount())
    root.enable_memory_for_children()
    top = root.child(f"sidecar-test-{uuid.uuid4().hex[:8]}.slice").create()
    top.enable_memory_for_children()
    made = Pod(top)
    pause = tmp_path / "pause"
    pause.symlink_to("/bin/sleep")
    sandbox = subprocess.Popen([str(pause), "600"], preexec_fn=enter(made.sandbox))
    try:
        yield made
    finally:
        sandbox.kill()
        sandbox.wait()
        remove_tree(top)


def start_pool(pod: Pod, tmp_path: Path, go: Path) -> subprocess.Popen[str]:
    """The workload's main process: waits for ``go`` (so the sidecar is up before the
    workers start, as a pool's start-up usually outlasts a sidecar's), then becomes the
    pool (exec: same pid, the oldest process of the container)."""
    argv = [*POOL, "--results", str(tmp_path / "workers.json")]
    script = (
        "import os, sys, time\n"
        f"while not os.path.exists({str(go)!r}):\n"
        "    time.sleep(0.05)\n"
        f"os.execv(sys.executable, {argv!r})\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script],
        preexec_fn=enter(pod.app),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def outcomes(tmp_path: Path) -> dict[int, str]:
    workers = json.loads((tmp_path / "workers.json").read_text())["workers"]
    return {w["index"]: w["outcome"] for w in workers}


def test_unguarded_pool_gets_oom_killed(pod: Pod, tmp_path: Path) -> None:
    """The baseline: without the sidecar the same pool overruns the pod's limit."""
    go = tmp_path / "go"
    go.touch()
    pool = start_pool(pod, tmp_path, go)
    output, _ = pool.communicate(timeout=180)
    assert pod.oom_kills() > 0, output
    assert any(o != "finished" for o in outcomes(tmp_path).values()), output


def test_sidecar_stops_newest_workers_main_and_oldest_live(pod: Pod, tmp_path: Path) -> None:
    go = tmp_path / "go"
    pool = start_pool(pod, tmp_path, go)
    sidecar = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "oomguard",
            "monitor",
            "--mode",
            "sidecar",
            "--cgroup-root",
            str(find_cgroup2_mount()),
            "--http-port",
            "0",
            "--reserve",
            "150Mi",
            "--grace",
            "1",
            "--scan-interval",
            "0.05",
            "--log-format",
            "json",
        ],
        preexec_fn=enter(pod.sidecar),
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[dict[str, object]] = []
    ready = threading.Event()

    def read_logs() -> None:
        assert sidecar.stderr is not None
        for raw in sidecar.stderr:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"msg": raw.rstrip()}
            lines.append(line)
            if line.get("msg") == "sidecar guarding workers":
                ready.set()

    reader = threading.Thread(target=read_logs, daemon=True)
    reader.start()
    try:
        assert ready.wait(120), f"sidecar never started guarding: {lines}"
        started = next(line for line in lines if line.get("msg") == "sidecar guarding workers")
        assert started["workload"] == str(pod.app.path.relative_to(find_cgroup2_mount()))
        assert started["memory_high"] == "350.0Mi"
        workers = pod.app.child("oomguard-workers")
        main = pod.app.child("oomguard-main")
        # the line on the whole container: a worker's first pages charged to the main leaf
        # are held back too; the leaves themselves carry no limit
        assert pod.app.memory_high().bytes == 350 * MI
        assert workers.memory_high().unlimited and main.memory_high().unlimited
        assert main.pids() == [pool.pid]  # the main process, alone in its leaf
        go.touch()
        output, _ = pool.communicate(timeout=180)
    finally:
        sidecar.terminate()
        sidecar.wait(30)
        reader.join(30)
    result = outcomes(tmp_path)
    finished = sorted(i for i, o in result.items() if o == "finished")
    stopped = sorted(i for i, o in result.items() if o != "finished")
    log = "\n".join(json.dumps(line) for line in lines)
    print(output, log, sep="\n")
    # the main process was never signalled: it exited on its own (1: not every worker finished)
    assert pool.returncode == 1, output
    assert pod.oom_kills() == 0, log
    assert {0, 1} <= set(finished), result
    assert stopped, result
    assert min(stopped) > max(finished), f"not newest first: {result}"
    assert all(result[i].startswith("killed by SIG") for i in stopped), result
    assert any(line.get("msg") == "worker stopped" for line in lines), log
    # the sidecar undid its layout on SIGTERM
    assert sidecar.returncode == 0, log
    assert not workers.exists() and not main.exists()
    assert "memory" not in pod.app.subtree_control()
    assert pod.app.memory_high().unlimited  # the container's memory.high restored
