"""The node agent on a real cgroup v2 kernel (the VM here) with a real control plane.

The VM has no network to the host, so etcd, kube-apiserver and kube-controller-manager run
inside it, started from tests/cluster/cache/bin by the same module as on the host.

A synthetic kubepods tree in the systemd layout sits under the VM's /sys/fs/cgroup:
``kubepods.slice`` (memory.max 700Mi, the "allocatable") with
``kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope``
per pod, each holding a real process that touches its memory. The pod objects on the
apiserver are bound to a Node named after the test and carry the same UIDs. The agent runs
for real (``build_agent`` + ``run_parts``: pod watch, memory.high on kubepods, event and
threshold monitors, Eviction API, Events).

No kubelet runs. For evictions the test plays the kubelet's part (``Kubelet`` below): when a
pod gets a deletionTimestamp, its containers are stopped (``cgroup.kill`` on the pod cgroup),
its cgroups removed and the pod object deleted, which is what a kubelet does at the end of a
graceful termination. Without that, an evicted pod's processes would never die and its memory
would never come back. When evictions are blocked (a PodDisruptionBudget that allows no
disruption), no pod gets a deletionTimestamp and only the agent's own last resort,
``cgroup.kill``, frees memory.

The pods are gated: all start, one second apart so their ages differ, and only then fill
their memory together. Every decision thus sees every pod, and "the evicted are the newest"
is a fact about the agent, not about how pod starts happened to interleave with its
decisions (a pod started after an episode's evictions may rightly outlive older victims).

Every load here adds up to more than kubepods' memory.max, and a control test runs each one
without the agent: the kernel OOM-kills there, so ``oom_kill == 0`` under the agent is the
agent's doing. Which monitor may act is fixed per test (the others and the loop's timer off),
so an assertion on the decision's trigger never depends on which thread won a race.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from control_plane import ClusterBinaries, ControlPlane, running_control_plane
from k8s_helpers import create_namespace, create_node, create_pod_on_node, wait_for
from kubernetes.client import CoreV1Api, PolicyV1Api

from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupGone, find_cgroup2_mount
from oomguard.monitor.kernel.memory_limit import MemoryLimit
from oomguard.monitor.kube.pod_cgroups import (
    CgroupDriver,
    KubepodsLocation,
    QosClass,
    pod_cgroup_path,
)
from oomguard.monitor.modes.node_agent import AgentOptions
from oomguard.monitor.modes.node_runtime import AgentParts, build_agent, run_parts
from oomguard.monitor.settings import (
    EventMonitorSettings,
    EvictionSettings,
    MonitorSettings,
    NodeSettings,
    ThresholdMonitorSettings,
)
from oomguard.monitor.triggers.stop_signal import StopSignal

pytestmark = pytest.mark.kernel

MI = 2**20
KUBEPODS_MAX = 700 * MI
# node memory 600Mi - reserve 200Mi = memory.high 400Mi (below 700Mi - 64Mi); target 95%: 380Mi
NODE_MEMORY = 600 * MI
RESERVE = 200 * MI
# The loads: each adds up to more than KUBEPODS_MAX, so without the agent the kernel OOM-kills.
POOL = (8, 100)  # 8 pods x 100 MiB = 800 MiB
BLOCKED_POOL = (6, 130)  # 6 pods x 130 MiB = 780 MiB
# The loop's own timer re-check off: only the monitors a test enables can start a decision.
NO_TIMER = 3600.0
# Bound on each wait in the VM (the agent's watch, a controller's status, the kernel): the
# machine is software-emulated and shared, and a controller once took over a minute there.
# A wait returns as soon as its condition holds.
VM_WAIT = 600.0
EVENT_ONLY = MonitorSettings(threshold=ThresholdMonitorSettings(enabled=False))
THRESHOLD_ONLY = MonitorSettings(
    event=EventMonitorSettings(enabled=False),
    threshold=ThresholdMonitorSettings(interval_ms=100),
)

HOG = """
import os, sys, time
mib, step = int(sys.argv[1]), 10
gate = sys.argv[2] if len(sys.argv) > 2 else None
while gate is not None and not os.path.exists(gate):
    time.sleep(0.05)
chunks = []
while len(chunks) * step < mib:
    chunks.append(b"\\1" * (step << 20))
    time.sleep(0.1)
print("full", flush=True)
time.sleep(3600)
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[ControlPlane]:
    """The control plane inside the VM (software-emulated: allow a slow start)."""
    with running_control_plane(ClusterBinaries.locate(), ready_timeout=600) as cp:
        yield cp


def enter(cgroup: Cgroup):  # type: ignore[no-untyped-def]
    procs = str(cgroup.file("cgroup.procs"))

    def join() -> None:
        with open(procs, "w") as f:
            f.write("0\n")

    return join


@dataclass
class PodRun:
    index: int
    name: str
    uid: str
    cgroup: Cgroup
    process: subprocess.Popen[bytes]
    started: datetime  # its status.startTime, which the API keeps in whole seconds

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Node:
    """A Node object, a kubepods tree for it, and pods that really use memory."""

    cp: ControlPlane
    name: str
    namespace: str
    top: Cgroup
    location: KubepodsLocation
    pods: list[PodRun] = field(default_factory=list)
    gate: Path | None = None  # gated pods allocate only once this file exists

    @property
    def core(self) -> CoreV1Api:
        return CoreV1Api(self.cp.api_client)

    @property
    def kubepods(self) -> Cgroup:
        return Cgroup(find_cgroup2_mount() / self.location.path)

    def start_pod(
        self, index: int, mib: int, labels: dict[str, str] | None = None, gated: bool = False
    ) -> PodRun:
        """Pod ``p<index>`` whose process fills ``mib``: at once, or when :meth:`release`
        is called if ``gated``."""
        assert self.gate is not None or not gated
        started = datetime.now(UTC)
        pod = create_pod_on_node(
            self.core,
            self.namespace,
            self.name,
            f"p{index}",
            memory_request="16Mi",
            labels=labels,
            start_time=started,
        )
        uid = pod.metadata.uid
        path = pod_cgroup_path(uid, QosClass.BURSTABLE, self.location)
        pod_cgroup = Cgroup(find_cgroup2_mount() / path).create()
        pod_cgroup.enable_memory_for_children()
        container = pod_cgroup.child(f"cri-containerd-{uuid.uuid4().hex}.scope").create()
        process = subprocess.Popen(
            [sys.executable, "-c", HOG, str(mib), *([str(self.gate)] if gated else [])],
            preexec_fn=enter(container),
            stdout=subprocess.DEVNULL,
        )
        run = PodRun(index, f"p{index}", uid, pod_cgroup, process, started)
        self.pods.append(run)
        return run

    def release(self) -> None:
        """Gated pods start filling their memory, all at once."""
        assert self.gate is not None
        self.gate.touch()

    def deleting(self, run: PodRun) -> bool:
        pods = self.core.list_namespaced_pod(
            self.namespace, field_selector=f"metadata.name={run.name}"
        ).items
        return bool(pods) and pods[0].metadata.deletion_timestamp is not None


@pytest.fixture
def node(cluster: ControlPlane, tmp_path: Path) -> Iterator[Node]:
    root = Cgroup(find_cgroup2_mount())
    root.enable_memory_for_children()
    top = root.child(f"node-test-{uuid.uuid4().hex[:8]}").create()
    top.enable_memory_for_children()
    kubepods = top.child("kubepods.slice").create()
    kubepods.set_memory_max(MemoryLimit(KUBEPODS_MAX))
    kubepods.enable_memory_for_children()
    burstable = kubepods.child("kubepods-burstable.slice").create()
    burstable.enable_memory_for_children()
    location = KubepodsLocation(
        CgroupDriver.SYSTEMD, PurePosixPath(top.path.name) / "kubepods.slice"
    )
    core = CoreV1Api(cluster.api_client)
    name = create_node(core, capacity={"cpu": "2", "memory": "600Mi", "pods": "110"})
    namespace = create_namespace(core)
    made = Node(cluster, name.metadata.name, namespace, top, location, gate=tmp_path / "go")
    try:
        yield made
    finally:
        for run in made.pods:
            run.process.kill()
            run.process.wait()
        remove_tree(top)


def remove_tree(cgroup: Cgroup) -> None:
    """Kill and remove ``cgroup`` and everything under it. A tree (or part of it) already
    gone is fine: the test's kubelet stand-in may be removing the same pod meanwhile."""
    try:
        cgroup.kill()
    except CgroupGone:
        return
    deadline = time.monotonic() + 15
    for directory in sorted(cgroup.path.rglob("*"), key=lambda p: -len(p.parts)):
        if directory.is_dir():
            with contextlib.suppress(CgroupGone):
                while Cgroup(directory).events().populated and time.monotonic() < deadline:
                    time.sleep(0.02)
            with contextlib.suppress(FileNotFoundError):
                directory.rmdir()
    with contextlib.suppress(FileNotFoundError):
        cgroup.path.rmdir()


class Kubelet:
    """The kubelet's part in an eviction: a pod with a deletionTimestamp gets its containers
    stopped (cgroup.kill), its cgroups removed and its object deleted. And in a kill: a pod
    whose process died (the agent's cgroup.kill) is marked Failed, as a kubelet does for a
    pod with restartPolicy Never; without that a dead pod would stay Running for ever and
    still look evictable to the agent."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.finished: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []
        self._claimed: set[str] = set()  # pods being or been finished
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Kubelet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self._sync()
            except Exception as exc:  # surfaced by the test, never lost in the thread
                self.errors.append(repr(exc))

    def finish(self, run: PodRun) -> bool:
        """End ``run``'s pod as a kubelet does: its containers stopped, its cgroups removed,
        its object deleted; then it is in ``finished``. Once per pod, whoever asks first:
        this stand-in for an evicted pod, or a test clearing a storm's survivors, which an
        eviction still in flight can make reach the same pod at the same moment. False: it
        was already being finished."""
        with self._lock:
            if run.name in self._claimed:
                return False
            self._claimed.add(run.name)
        run.cgroup.kill()
        run.process.wait(10)
        remove_tree(run.cgroup)
        self.node.core.delete_namespaced_pod(run.name, self.node.namespace, grace_period_seconds=0)
        self.finished.append(run.name)
        return True

    def _sync(self) -> None:
        core = self.node.core
        for pod in core.list_namespaced_pod(self.node.namespace).items:
            if pod.metadata.deletion_timestamp is None:
                continue
            self.finish(next(r for r in self.node.pods if r.uid == pod.metadata.uid))
        for run in self.node.pods:
            if run.alive or run.name in self._claimed or run.name in self.failed:
                continue
            core.patch_namespaced_pod_status(
                run.name, self.node.namespace, {"status": {"phase": "Failed"}}
            )
            self.failed.append(run.name)


def start_agent(
    node: Node,
    eviction: EvictionSettings,
    stop: StopSignal,
    monitor: MonitorSettings | None = None,
    tick_seconds: float = 0.5,
) -> tuple[AgentParts, threading.Thread]:
    settings = NodeSettings(
        node_name=node.name,
        node_memory_bytes=NODE_MEMORY,
        reserve_bytes=RESERVE,
        monitor=monitor or MonitorSettings(),
        eviction=eviction,
    )
    options = AgentOptions(
        cgroup_root=find_cgroup2_mount(),
        kubepods=node.location,
        margin_bytes=64 * MI,
        tick_seconds=tick_seconds,
    )
    parts = build_agent(node.core, options, settings, monitors=None)
    thread = threading.Thread(target=run_parts, args=(parts, stop), daemon=True)
    thread.start()
    wait_for(
        "kubepods memory.high set by the agent",
        lambda: node.kubepods.memory_high().bytes == 400 * MI,
        timeout=VM_WAIT,
    )
    return parts, thread


def stop_agent(node: Node, stop: StopSignal, thread: threading.Thread) -> None:
    stop.set()
    thread.join(20)
    assert not thread.is_alive()
    assert node.kubepods.memory_high().unlimited  # restored on the way out


def settle(
    parts: AgentParts, node: Node, mib: int, seconds: float = 3.0, timeout: float = 120
) -> None:
    """Wait until every pod still running holds its full ``mib`` and usage stays under the
    target for ``seconds``."""
    target = parts.agent.target_bytes()
    calm_since: float | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        full = all(r.cgroup.memory_current() >= mib * MI for r in node.pods if r.alive)
        if full and node.kubepods.working_set() < target:
            calm_since = calm_since or time.monotonic()
            if time.monotonic() - calm_since >= seconds:
                return
        else:
            calm_since = None
        time.sleep(0.2)
    raise AssertionError(
        f"usage {node.kubepods.working_set()} never settled under {target}: {parts.agent.status()}"
    )


def summary(node: Node, parts: AgentParts) -> dict[str, Any]:
    return {
        "events": dict(node.kubepods.memory_events().counters),
        "counters": parts.agent.counters,
        "decisions": decisions_by_trigger(parts),
        "alive": [r.name for r in node.pods if r.alive],
        "errors": parts.agent.errors,
    }


def decisions_by_trigger(parts: AgentParts) -> dict[str, float]:
    """``oomguard_decisions_total`` by its ``trigger`` label: what started every decision."""
    metrics = parts.agent.metrics
    assert metrics is not None
    found: dict[str, float] = {}
    for family in metrics.registry.collect():
        if family.name == "oomguard_decisions":
            for sample in family.samples:
                if sample.name == "oomguard_decisions_total" and sample.value:
                    found[sample.labels["trigger"]] = sample.value
    return found


def start_gated(
    node: Node, parts: AgentParts | None, count: int, mib: int, labels: dict[str, str] | None = None
) -> None:
    """``count`` gated pods of ``mib`` each, oldest first: each starts in a later second than
    the one before (a pod's age is its whole-second ``status.startTime``) and, when there is
    an agent, is in its watch before the next starts. None fills its memory before
    :meth:`Node.release`, so every decision sees every pod: which pods go depends on their
    ages alone, never on how pod starts interleaved with the agent's decisions."""
    for index in range(count):
        run = node.start_pod(index, mib, labels=labels, gated=True)
        if parts is not None:
            wait_for(
                f"pod {index} in the agent's watch",
                lambda uid=run.uid: uid in parts.watch.snapshot(),
                timeout=VM_WAIT,
            )
        next_second = run.started.replace(microsecond=0) + timedelta(seconds=1)
        wait_for(
            "the next second, for the next pod's start time",
            lambda next_second=next_second: datetime.now(UTC) >= next_second,
            timeout=5,
            interval=0.05,
        )


@pytest.mark.parametrize("load", [POOL, BLOCKED_POOL], ids=lambda load: f"{load[0]}x{load[1]}MiB")
def test_without_the_agent_the_kernel_oom_kills(node: Node, load: tuple[int, int]) -> None:
    """The control: each load the agent tests use, alone under kubepods' memory.max, ends in
    a kernel OOM kill. Without it, ``oom_kill == 0`` in the tests below would prove nothing."""
    count, mib = load
    assert count * mib * MI > KUBEPODS_MAX
    start_gated(node, None, count, mib)
    node.release()
    wait_for(
        "a kernel OOM kill in kubepods",
        lambda: node.kubepods.memory_events().counters["oom_kill"] > 0,
        timeout=VM_WAIT,
    )


def run_pool(node: Node, monitor: MonitorSettings) -> tuple[AgentParts, dict[str, Any], list[int]]:
    """The POOL load under an agent that only ``monitor`` can wake (no timer), the kubelet's
    part played; returns the agent, its summary and the indexes of the evicted pods."""
    stop = StopSignal()
    eviction = EvictionSettings(
        buffer_bytes=16 * MI,
        grace_period_seconds=5,
        kill_fallback_wait_seconds=60,
        max_evictions_per_minute=30,
    )
    parts, thread = start_agent(node, eviction, stop, monitor, tick_seconds=NO_TIMER)
    try:
        with Kubelet(node) as kubelet:
            count, mib = POOL
            start_gated(node, parts, count, mib)
            node.release()
            settle(parts, node, mib)
            info = summary(node, parts)
            evicted = sorted(int(name[1:]) for name in kubelet.finished)
            assert kubelet.errors == []
    finally:
        stop_agent(node, stop, thread)
    print(info, evicted)
    return parts, info, evicted


def assert_newest_evicted(
    node: Node, parts: AgentParts, info: dict[str, Any], evicted: list[int]
) -> None:
    alive = sorted(r.index for r in node.pods if r.alive)
    assert info["events"]["oom_kill"] == 0, info
    assert evicted, info
    assert min(evicted) > max(alive), f"not newest first: evicted {evicted}, alive {alive}"
    assert {0, 1, 2} <= set(alive), info
    assert info["counters"]["evicted"] == len(evicted)
    assert info["counters"]["killed"] == 0
    assert parts.agent.last_decision is not None
    events = node.core.list_namespaced_event(node.namespace).items
    assert {e.involved_object.name for e in events if e.reason == "OOMGuardEviction"} == {
        f"p{i}" for i in evicted
    }


def test_high_event_evicts_the_newest_pods(node: Node) -> None:
    """Only the event monitor can wake the agent (threshold monitor and timer off), so every
    decision is the memory.events ``high`` notification's."""
    parts, info, evicted = run_pool(node, EVENT_ONLY)
    assert info["events"]["high"] > 0, info  # memory.high was reached: the event fired
    assert set(info["decisions"]) == {"event"}, info
    assert info["decisions"]["event"] == info["counters"]["decisions"], info
    assert parts.agent.last_decision is not None
    assert parts.agent.last_decision["trigger"] == "event"
    assert_newest_evicted(node, parts, info, evicted)


def test_threshold_monitor_alone_evicts_the_newest_pods(node: Node) -> None:
    """The backup path: with the event monitor and the timer off, the threshold monitor's
    poll of the working set decides alone and still evicts newest first, before any OOM."""
    parts, info, evicted = run_pool(node, THRESHOLD_ONLY)
    assert set(info["decisions"]) == {"threshold"}, info
    assert info["decisions"]["threshold"] == info["counters"]["decisions"], info
    assert parts.agent.last_decision is not None
    assert parts.agent.last_decision["trigger"] == "threshold"
    assert_newest_evicted(node, parts, info, evicted)


def test_blocked_evictions_fall_back_to_cgroup_kill(node: Node) -> None:
    policy = PolicyV1Api(node.cp.api_client)
    policy.create_namespaced_pod_disruption_budget(
        node.namespace,
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "all"},
            # minAvailable above the pod count: no disruption is ever allowed (an integer
            # minAvailable needs no controller behind the pods, unlike maxUnavailable)
            "spec": {"minAvailable": 100, "selector": {"matchLabels": {"app": "pool"}}},
        },
    )
    stop = StopSignal()
    eviction = EvictionSettings(
        buffer_bytes=16 * MI,
        grace_period_seconds=5,
        kill_fallback_wait_seconds=3,
        max_evictions_per_minute=30,
    )
    parts, thread = start_agent(node, eviction, stop)
    count, mib = BLOCKED_POOL
    try:
        with Kubelet(node) as kubelet:
            # against memory.high 400Mi and memory.max 700Mi
            start_gated(node, parts, count, mib, labels={"app": "pool"})

            def protected() -> bool:
                pdb = policy.read_namespaced_pod_disruption_budget("all", node.namespace)
                status = pdb.status
                return bool(
                    status
                    and status.observed_generation == pdb.metadata.generation
                    and status.expected_pods == count
                    and status.disruptions_allowed == 0
                )

            wait_for("the PDB to cover every pod", protected, timeout=VM_WAIT)
            node.release()
            settle(parts, node, mib)
            info = summary(node, parts)
            assert kubelet.finished == []  # nothing was evicted: the PDB said no every time
            assert kubelet.errors == []
    finally:
        stop_agent(node, stop, thread)
    print(info)
    alive = sorted(r.index for r in node.pods if r.alive)
    killed = sorted(r.index for r in node.pods if not r.alive)
    assert info["events"]["oom_kill"] == 0, info
    assert killed, info
    assert min(killed) > max(alive), f"not newest first: killed {killed}, alive {alive}"
    assert {0, 1} <= set(alive), info
    assert info["counters"]["killed"] >= 1 and info["counters"]["blocked"] >= 1, info
    assert info["counters"]["evicted"] == 0
    assert not any(node.deleting(r) for r in node.pods)
    messages = [
        e.message
        for e in node.core.list_namespaced_event(node.namespace).items
        if e.reason == "OOMGuardEviction"
    ]
    assert any("cgroup.kill" in m for m in messages), messages
