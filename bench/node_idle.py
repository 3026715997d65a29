"""The node agent at rest: how often ``oomguard monitor`` wakes, and what it costs, when
nothing happens on its node, per monitor set, side by side in one run.

Runs inside the real-kernel VM (cgroup v2), with a control plane of its own there (etcd,
kube-apiserver, controller-manager, from tests/cluster) and the chart's CRDs, a Node object,
and a synthetic systemd-layout kubepods tree (the bed of
``tests/monitor/modes/test_agent_crash_kernel.py``). The agent is the real command, as a
DaemonSet pod runs it; its monitors come from the node's ``NodeMemoryReserve``, as the
operator would write it.

    tests/vm/run-in-vm --memory 2G --timeout 1500 -- .venv/bin/python bench/node_idle.py

Per monitor set: start the agent, wait until it is ready with those monitors running and
its start-up is over (under 2 % CPU over 2 s), then count wake-ups (voluntary context
switches over every thread, ``/proc/PID/task/*/status``) and CPU over ``--window`` seconds,
``--repetitions`` windows one after another. Prints median [min-max] per set.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
sys.path.insert(0, str(ROOT / "bench"))

from control_plane import free_port, running_control_plane  # noqa: E402
from crd_install import install_crds  # noqa: E402
from k8s_helpers import create_node  # noqa: E402
from kubernetes.client import CoreV1Api, CustomObjectsApi  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402
from stormlib.proc import WakeupCounter, cpu_seconds  # noqa: E402

from oomguard.monitor.kernel.cgroupfs import Cgroup, find_cgroup2_mount  # noqa: E402
from oomguard.monitor.kernel.memory_limit import MemoryLimit  # noqa: E402
from oomguard.wire.crd import GROUP, RESERVE_PLURAL, VERSION  # noqa: E402
from oomguard.wire.monitor_sections.threshold import ThresholdMonitorSettings  # noqa: E402
from oomguard.wire.monitor_settings import MonitorSettings  # noqa: E402
from oomguard.wire.node_settings import NodeSettings  # noqa: E402

MI = 2**20
SETS = {
    "defaults (event + threshold 1 s)": MonitorSettings(),
    "event only": MonitorSettings(threshold=ThresholdMonitorSettings(enabled=False)),
}


def reserve_body(node: str, monitor: MonitorSettings) -> dict[str, object]:
    settings = NodeSettings(
        node_name=node,
        node_memory_bytes=600 * MI,
        reserve_bytes=200 * MI,
        source_policy="node-idle-bench",
        monitor=monitor,
    )
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "NodeMemoryReserve",
        "metadata": {"name": node},
        "spec": settings.to_spec(),
    }


def get_json(port: int, route: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{route}", timeout=10) as answer:
            value = json.loads(answer.read())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def wait(what: str, check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


def settle(pid: int, limit: float) -> bool:
    """Until the process used < 2 % CPU over 2 s (start-up over), or ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds(pid) or 0.0
        time.sleep(2.0)
        if (cpu_seconds(pid) or 0.0) - before < 0.04:
            return True
    return False


def shown(values: Sequence[float], digits: int = 2) -> str:
    med = statistics.median(values)
    if min(values) == max(values):
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def measure(
    agent: subprocess.Popen[bytes], window: float, repetitions: int
) -> list[tuple[int, float]]:
    """(wake-ups, CPU seconds) per window, read every second so that a thread that ends
    in the window is still counted."""
    counter = WakeupCounter(agent.pid)
    out = []
    for _ in range(repetitions):
        woken0, cpu0 = counter.read(), cpu_seconds(agent.pid)
        t0 = time.monotonic()
        while time.monotonic() - t0 < window:
            time.sleep(1.0)
            counter.read()
        woken1, cpu1 = counter.read(), cpu_seconds(agent.pid)
        if None in (woken0, woken1, cpu0, cpu1) or agent.poll() is not None:
            raise RuntimeError("the agent exited during the window")
        assert woken0 is not None and woken1 is not None and cpu0 is not None and cpu1 is not None
        out.append((woken1 - woken0, cpu1 - cpu0))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--window", type=float, default=60.0)
    p.add_argument("--repetitions", type=int, default=3)
    p.add_argument("--settle-seconds", type=float, default=120.0)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="oomguard-node-idle-"))
    root = Cgroup(find_cgroup2_mount())
    root.enable_memory_for_children()
    top = root.child(f"node-idle-{uuid.uuid4().hex[:8]}").create()
    rows: dict[str, list[tuple[int, float]]] = {}
    try:
        top.enable_memory_for_children()
        kubepods = top.child("kubepods.slice").create()
        kubepods.set_memory_max(MemoryLimit(700 * MI))
        kubepods.enable_memory_for_children()
        kubepods.child("kubepods-burstable.slice").create()
        location = PurePosixPath(top.path.name) / "kubepods.slice"
        with running_control_plane(ready_timeout=600) as cp:
            install_crds(cp.api_client)
            core, custom = CoreV1Api(cp.api_client), CustomObjectsApi(cp.api_client)
            node = create_node(core, capacity={"cpu": "2", "memory": "600Mi", "pods": "110"})
            name = node.metadata.name
            for label, monitor in SETS.items():
                body = reserve_body(name, monitor)
                with contextlib.suppress(ApiException):  # the first set: none yet
                    custom.delete_cluster_custom_object(GROUP, VERSION, RESERVE_PLURAL, name)
                custom.create_cluster_custom_object(GROUP, VERSION, RESERVE_PLURAL, body)
                rows[label] = run_agent(cp.kubeconfig, name, location, monitor, work, args)
                print(f"node_idle: {label}: {rows[label]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for cgroup in sorted(top.path.rglob("*"), key=lambda q: len(q.parts), reverse=True):
            if cgroup.is_dir():
                cgroup.rmdir()
        top.path.rmdir()
    print(f"\nnode agent at rest, {args.repetitions} windows of {args.window:.0f} s each")
    print(f"{'monitors':<34} {'wake-ups per s':>22} {'CPU % of one core':>24}")
    for label, windows in rows.items():
        per_s = [w / args.window for w, _ in windows]
        cpu = [100 * c / args.window for _, c in windows]
        print(f"{label:<34} {shown(per_s):>22} {shown(cpu):>24}")
    return 0


def run_agent(
    kubeconfig: Path,
    node: str,
    location: PurePosixPath,
    monitor: MonitorSettings,
    work: Path,
    args: argparse.Namespace,
) -> list[tuple[int, float]]:
    port = free_port()
    state = work / f"state-{port}"
    argv = [
        *(sys.executable, "-m", "oomguard", "monitor", "--node-name", node),
        *("--cgroup-root", str(find_cgroup2_mount()), "--kubepods-cgroup", str(location)),
        *("--cgroup-driver", "systemd", "--systemd-dbus", "off"),
        *("--node-memory", "600Mi", "--reserve", "200Mi", "--state-dir", str(state)),
        *("--kubeconfig", str(kubeconfig), "--http-host", "127.0.0.1", "--http-port", str(port)),
    ]
    wanted = sorted(name for name in ("event", "threshold") if getattr(monitor, name).enabled)
    log = (work / f"agent-{port}.log").open("wb")
    agent = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:

        def running() -> bool:
            status = get_json(port, "/status")
            monitors = status.get("monitors") if status else None
            names = monitors.get("running") if isinstance(monitors, dict) else None
            return isinstance(names, list) and sorted(names) == wanted

        wait(f"the agent running {wanted}", running, 600)
        if not settle(agent.pid, args.settle_seconds):
            print("node_idle: the agent did not settle; measuring anyway", flush=True)
        return measure(agent, args.window, args.repetitions)
    finally:
        agent.terminate()
        agent.wait(60)
        log.close()


if __name__ == "__main__":
    raise SystemExit(main())
