"""Item 2 of "do no harm" on a real cgroup v2 kernel (the VM): the real ``oomguard monitor``
process, killed mid-episode by SIGTERM or SIGKILL and started again, leaves kubepods
``memory.high`` exactly as recorded. And item 8: how fast its decision path is while the
agent itself sits inside the kubepods cgroup it throttles (a measurement, printed).

The bed is the one of ``test_node_agent_kernel.py``: a control plane inside the VM (etcd,
kube-apiserver, controller-manager), a Node object and a synthetic systemd-layout kubepods
tree (``memory.max`` 700Mi) under the VM's cgroup2 root with one cgroup and one real
process per pod. The agent here is not a thread but the real command, started with
``python -m oomguard monitor`` against that kubepods cgroup with a state directory of the
test's own (the chart's ``/var/lib/oomguard``): argument parsing, the node lock, signal
handling and the exit path are the ones a DaemonSet pod runs. It is told node memory 600Mi
and reserve 200Mi, so it sets ``memory.high`` 400Mi; no NodeMemoryReserve is watched.

The storm: six pods of 100 MiB each (600 MiB: over ``memory.high``, under ``memory.max``, so
the kernel throttles and never OOM-kills). No kubelet runs in the crash tests, so an evicted
pod stays Terminating with its memory held: the episode is still running (the agent has set
``memory.high`` and evicted, the memory is not back) when the test kills the agent.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest
from control_plane import ClusterBinaries, ControlPlane, free_port, running_control_plane
from k8s_helpers import create_namespace, create_node
from kubernetes.client import CoreV1Api
from monitor_fakes import wait_for
from prometheus_client.parser import text_string_to_metric_families
from test_node_agent_kernel import Kubelet, Node, PodRun, enter, remove_tree

from oomguard.monitor.kernel.cgroupfs import Cgroup, find_cgroup2_mount
from oomguard.monitor.kernel.memory_limit import MemoryLimit
from oomguard.monitor.kube.pod_cgroups import CgroupDriver, KubepodsLocation
from oomguard.monitor.modes.high_record_file import RECORD_FILE
from oomguard.monitor.runtime.node_lock import LOCK_FILE, NodeLock

# the first test also waits for the control plane, under emulation on a busy host
pytestmark = [pytest.mark.kernel, pytest.mark.timeout(2400)]

MI = 2**20
KUBEPODS_MAX = 700 * MI
AGENT_HIGH = 400 * MI  # node memory 600Mi - reserve 200Mi (below 700Mi - the 64Mi margin)
STORM = (6, 100)  # 6 pods x 100 MiB: over memory.high 400Mi, under memory.max 700Mi
# the originals an administrator may have left: the kernel's default, and a number of its
# own (above the agent's value, under memory.max)
ORIGINALS = [pytest.param(None, id="max"), pytest.param(650 * MI, id="650Mi")]
ADOPTED = "kubepods memory.high holds a value an earlier agent set"
# Bound on every wait for the agent (starting, acting, exiting): its start alone imports the
# command line and the Kubernetes client, a few seconds natively and minutes in a TCG VM
# that shares two cores with others. A wait returns as soon as its condition holds.
STARTUP = 600.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[ControlPlane]:
    """The control plane inside the VM (software-emulated: allow a slow start)."""
    with running_control_plane(ClusterBinaries.locate(), ready_timeout=600) as cp:
        yield cp


@dataclass
class Agent:
    """One ``oomguard monitor`` process; its stdout and stderr go to ``log``."""

    process: subprocess.Popen[bytes]
    log: Path
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def lines(self) -> list[dict[str, object]]:
        """Its JSON log lines (a torn last line is left out)."""
        found = []
        for line in self.output().splitlines():
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                found.append(value)
        return found

    def said(self, message: str) -> dict[str, object] | None:
        """Its first log line whose message starts with ``message``."""
        return next(
            (line for line in self.lines() if str(line.get("msg", "")).startswith(message)),
            None,
        )

    def wait_exit(self, timeout: float = STARTUP) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"agent {self.pid} did not exit:\n{self.output()}") from None

    def ready(self) -> bool:
        """``/readyz`` answers 200 (its pod list is in)."""
        try:
            return self.get("/readyz").startswith(b"ok")
        except OSError:  # not listening yet, or 503
            return False

    def get(self, route: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{route}", timeout=30) as reply:
            body: bytes = reply.read()
            return body


@dataclass
class Bed:
    """The node (pods, kubepods), the node's state directory and the agents started on it."""

    node: Node
    state_dir: Path
    logs: Path
    agents: list[Agent] = field(default_factory=list)

    @property
    def kubepods(self) -> Cgroup:
        return self.node.kubepods

    def high_text(self) -> str:
        """kubepods memory.high exactly as the kernel shows it."""
        return self.kubepods.file("memory.high").read_text().strip()

    def record(self) -> dict[str, object]:
        value = json.loads((self.state_dir / RECORD_FILE).read_text())
        assert isinstance(value, dict)
        return value

    def start_agent(self, cgroup: Cgroup | None = None, extra: tuple[str, ...] = ()) -> Agent:
        """``oomguard monitor`` on this node as its own process (in ``cgroup`` if given,
        else where the test runs: outside kubepods)."""
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "oomguard",
            "monitor",
            "--log-format",
            "json",
            "--node-name",
            self.node.name,
            "--cgroup-root",
            str(find_cgroup2_mount()),
            "--kubepods-cgroup",
            str(self.node.location.path),
            "--cgroup-driver",
            "systemd",
            "--systemd-dbus",
            "off",
            "--node-memory",
            "600Mi",
            "--reserve",
            "200Mi",
            "--state-dir",
            str(self.state_dir),
            "--kubeconfig",
            str(self.node.cp.kubeconfig),
            "--no-reserve-watch",
            "--http-host",
            "127.0.0.1",
            "--http-port",
            str(port),
            *extra,
        ]
        log = self.logs / f"agent-{len(self.agents)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=enter(cgroup) if cgroup is not None else None,
            )
        agent = Agent(process, log, port)
        self.agents.append(agent)
        return agent

    def until(
        self,
        what: str,
        predicate: Callable[[], bool],
        agent: Agent | None,
        timeout: float = STARTUP,
    ) -> None:
        """Wait for ``predicate``; fail at once, with its log, if ``agent`` exits meanwhile."""

        def check() -> bool:
            if agent is not None and not agent.alive:
                raise AssertionError(
                    f"agent {agent.pid} exited ({agent.process.returncode}) while waiting for "
                    f"{what}:\n{agent.output()}"
                )
            return predicate()

        if not wait_for(check, timeout=timeout):
            logs = "\n".join(f"--- agent {a.pid}:\n{a.output()[-4000:]}" for a in self.agents)
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")

    def terminating(self) -> list[str]:
        """Pods the API has marked for deletion (evicted: no kubelet finishes them here)."""
        pods = self.node.core.list_namespaced_pod(self.node.namespace).items
        return [p.metadata.name for p in pods if p.metadata.deletion_timestamp is not None]

    def storm(self, first_index: int = 0) -> None:
        count, mib = STORM
        for index in range(first_index, first_index + count):
            self.node.start_pod(index, mib)


def set_original(bed: Bed, original: int | None) -> str:
    """Put ``original`` in kubepods memory.high as an administrator would; the text the kernel
    then shows."""
    bed.kubepods.set_memory_high(MemoryLimit(original))
    return bed.high_text()


@pytest.fixture
def bed(cluster: ControlPlane, tmp_path: Path) -> Iterator[Bed]:
    root = Cgroup(find_cgroup2_mount())
    root.enable_memory_for_children()
    top = root.child(f"crash-test-{uuid.uuid4().hex[:8]}").create()
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
    state_dir = tmp_path / "state"
    logs = tmp_path / "logs"
    logs.mkdir()
    made = Bed(Node(cluster, name.metadata.name, namespace, top, location), state_dir, logs)
    try:
        yield made
    finally:
        for agent in made.agents:
            if agent.alive:
                agent.process.kill()
            agent.process.wait()
        for run in made.node.pods:
            run.process.kill()
            run.process.wait()
        remove_tree(top)


def start_and_storm(bed: Bed, original_text: str) -> Agent:
    """Start the agent, wait until it has recorded the original and set its memory.high,
    start the storm and wait until the episode runs: memory.high crossed, a pod evicted
    (Terminating, its memory still held) and memory.high still the agent's."""
    agent = bed.start_agent()
    bed.until("the agent's memory.high", lambda: bed.high_text() == str(AGENT_HIGH), agent)
    record = bed.record()  # written before memory.high: there by now
    assert record["original"] == original_text, record
    assert record["written"] == [str(AGENT_HIGH)], record
    bed.storm()
    bed.until("an eviction in the storm", lambda: bool(bed.terminating()), agent)
    assert bed.high_text() == str(AGENT_HIGH)
    assert bed.kubepods.memory_events().counters["high"] > 0
    return agent


def assert_restored(bed: Bed, original_text: str) -> None:
    assert bed.high_text() == original_text
    assert not (bed.state_dir / RECORD_FILE).exists()  # a clean stop drops the record
    NodeLock.acquire(bed.state_dir / LOCK_FILE).release()  # and the lock


@pytest.mark.parametrize("original", ORIGINALS)
def test_sigterm_mid_episode_restores_the_original(bed: Bed, original: int | None) -> None:
    original_text = set_original(bed, original)
    agent = start_and_storm(bed, original_text)
    agent.process.send_signal(signal.SIGTERM)
    assert agent.wait_exit() == 0, agent.output()
    assert_restored(bed, original_text)
    assert agent.said("kubepods memory.high restored") is not None, agent.output()


@pytest.mark.parametrize("original", ORIGINALS)
def test_sigkill_mid_episode_then_a_restart_restores_the_recorded_original(
    bed: Bed, original: int | None
) -> None:
    original_text = set_original(bed, original)
    first = start_and_storm(bed, original_text)
    first.process.send_signal(signal.SIGKILL)
    assert first.wait_exit() == -signal.SIGKILL
    # nothing ran on the way out: the node stays throttled, and the record says why
    assert bed.high_text() == str(AGENT_HIGH)
    record = bed.record()
    assert record["original"] == original_text, record
    assert record["written"] == [str(AGENT_HIGH)], record

    successor = bed.start_agent()  # a new process, the same state directory
    bed.until("the successor adopting the record", lambda: bool(successor.said(ADOPTED)), successor)
    adopted = successor.said(ADOPTED)
    assert adopted is not None
    assert adopted["found"] == str(AGENT_HIGH), adopted
    assert adopted["original"] == original_text, adopted
    assert bed.high_text() == str(AGENT_HIGH)  # it guards with the same value meanwhile
    assert bed.record()["original"] == original_text

    successor.process.send_signal(signal.SIGTERM)
    assert successor.wait_exit() == 0, successor.output()
    assert_restored(bed, original_text)  # the original, not the throttled value it found


def test_the_lock_of_a_killed_agent_is_free_for_its_successor_at_once(bed: Bed) -> None:
    original_text = set_original(bed, None)
    first = start_and_storm(bed, original_text)
    second = bed.start_agent()  # while the first lives: refused, naming it
    assert second.wait_exit() == 2, second.output()
    assert "another oomguard agent guards this node" in second.output()
    assert f"locked by pid {first.pid}" in second.output()
    assert bed.high_text() == str(AGENT_HIGH)  # the refused agent touched nothing
    assert bed.record()["original"] == original_text

    first.process.send_signal(signal.SIGKILL)
    first.wait_exit()
    killed_at = time.monotonic()
    successor = bed.start_agent()  # at once: no wait for a stale lock
    lock = bed.state_dir / LOCK_FILE
    bed.until(
        "the successor holding the lock",
        lambda: lock.read_text().strip() == str(successor.pid),
        successor,
    )
    print(f"successor held the lock {time.monotonic() - killed_at:.2f} s after the SIGKILL")
    bed.until("the successor adopting the record", lambda: bool(successor.said(ADOPTED)), successor)
    assert successor.alive
    successor.process.send_signal(signal.SIGTERM)
    assert successor.wait_exit() == 0, successor.output()
    assert_restored(bed, original_text)


# ------------------------------------------------------------------ the decision path, measured

REPETITIONS = 3
LATENCIES = ("oomguard_detection_latency_seconds", "oomguard_decision_to_action_seconds")


def latency_totals(agent: Agent) -> dict[str, float]:
    """``_sum`` and ``_count`` of the agent's latency histograms (all labels together) and its
    decisions, from its ``/metrics``."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(agent.get("/metrics").decode()):
        for sample in family.samples:
            wanted = family.name in LATENCIES and sample.name.endswith(("_sum", "_count"))
            if wanted or sample.name == "oomguard_decisions_total":
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


@dataclass
class Timeline:
    """What the test saw of one storm: when kubepods first crossed memory.high (its
    ``memory.events`` ``high`` counter moved) and when the API first showed one of the storm's
    pods evicted (a deletionTimestamp), both on the test's monotonic clock."""

    breach: float | None = None
    eviction: float | None = None


def watch_storm(bed: Bed, names: set[str], high_before: int, timeline: Timeline) -> None:
    deadline = time.monotonic() + 300
    while timeline.breach is None and time.monotonic() < deadline:
        if bed.kubepods.memory_events().counters["high"] > high_before:
            timeline.breach = time.monotonic()
        else:
            time.sleep(0.01)
    while timeline.eviction is None and time.monotonic() < deadline:
        if names & set(bed.terminating()):
            timeline.eviction = time.monotonic()
        else:
            time.sleep(0.05)


def test_decision_path_with_the_agent_throttled_inside_kubepods(bed: Bed) -> None:
    """A measurement, not a timed assertion (docs/safety.md has the figures): the agent runs
    in a pod cgroup of its own under kubepods, as the DaemonSet's pod does, so each storm
    throttles it with everyone else. Per storm: from the breach (kubepods' ``high`` counter
    moving) to the first eviction the API shows, as the test sees them; and the agent's own
    histograms (monitor wake-up to decision, decision to the Eviction API's answer)."""
    uid = str(uuid.uuid4())
    pod = bed.kubepods.child(f"kubepods-pod{uid.replace('-', '_')}.slice").create()
    pod.enable_memory_for_children()
    own = pod.child(f"cri-containerd-{uuid.uuid4().hex}.scope").create()
    agent = bed.start_agent(cgroup=own, extra=("--pod-uid", uid))
    bed.until("the agent's memory.high", lambda: bed.high_text() == str(AGENT_HIGH), agent)
    bed.until("the agent's /readyz", agent.ready, agent)
    target = AGENT_HIGH * 95 // 100
    count, mib = STORM
    rows = []
    with Kubelet(bed.node) as kubelet:
        for repetition in range(REPETITIONS):
            first = repetition * count
            names = {f"p{index}" for index in range(first, first + count)}
            before = latency_totals(agent)
            high_before = bed.kubepods.memory_events().counters["high"]
            stall_before = own.memory_pressure().some.total_us
            timeline = Timeline()
            watcher = threading.Thread(
                target=watch_storm, args=(bed, names, high_before, timeline), daemon=True
            )
            watcher.start()
            bed.storm(first)
            watcher.join(300)
            runs = [run for run in bed.node.pods if run.name in names]

            def settled(runs: list[PodRun] = runs) -> bool:
                full = all(r.cgroup.memory_current() >= mib * MI for r in runs if r.alive)
                return full and bed.kubepods.working_set() < target

            bed.until(f"storm {repetition} over", settled, agent)
            after = latency_totals(agent)
            delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
            assert timeline.breach is not None and timeline.eviction is not None, timeline
            detections = delta["oomguard_detection_latency_seconds_count"]
            actions = delta["oomguard_decision_to_action_seconds_count"]
            rows.append(
                {
                    "storm": repetition,
                    "breach_to_eviction_seen_s": round(timeline.eviction - timeline.breach, 3),
                    "decisions": delta["oomguard_decisions_total"],
                    "mean_detection_to_decision_s": (  # None: only re-checks decided
                        round(delta["oomguard_detection_latency_seconds_sum"] / detections, 4)
                        if detections
                        else None
                    ),
                    "actions": actions,
                    "mean_decision_to_action_s": round(
                        delta["oomguard_decision_to_action_seconds_sum"] / max(actions, 1), 4
                    ),
                    "agent_memory_stall_s": round(
                        (own.memory_pressure().some.total_us - stall_before) / 1e6, 3
                    ),
                    "evicted": sorted(names & set(kubelet.finished)),
                }
            )
            assert bed.kubepods.memory_events().counters["oom_kill"] == 0, rows
            # the storm's survivors go before the next one, ended as a kubelet would (an
            # eviction still in flight may have the stand-in finishing one of them already)
            for run in runs:
                kubelet.finish(run)
        assert kubelet.errors == [], kubelet.errors
    print("decision path, agent inside kubepods:")
    for row in rows:
        print(json.dumps(row))
    assert all(row["actions"] >= 1 for row in rows), rows
