"""The node agent against the real control plane, as its own ServiceAccount with exactly the
chart's agent ClusterRole rules (rendered from helm/oomguard by the real helm).

Memory numbers come from a plain-file imitation of a kubepods tree (systemd layout) whose pod
cgroups are named after the real pods' UIDs; everything Kubernetes-facing is real: the pod
watch with its field selector, the Eviction API with a PodDisruptionBudget computed by the
real disruption controller, Events, RBAC, the NodeMemoryReserve CRD and its status.
No kubelet runs: an evicted pod keeps its deletionTimestamp and stays visible.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from control_plane import ControlPlane
from crd_install import install_crds
from k8s_helpers import (
    PAUSE_IMAGE,
    create_namespace,
    create_node,
    create_pod_on_node,
    ensure_service_account,
    request_token,
    set_pod_running,
    token_client,
    unique_name,
    wait_for,
)
from kubernetes import client
from kubernetes.client import CoreV1Api, CustomObjectsApi, PolicyV1Api, RbacAuthorizationV1Api
from kubernetes.client.rest import ApiException
from monitor_fakes import write_cgroup as fake_cgroup_files
from prometheus_client.parser import text_string_to_metric_families

from oomguard.monitor.decision.newest_first import Outcome as Decided
from oomguard.monitor.kube.pod_cgroups import (
    CgroupDriver,
    KubepodsLocation,
    QosClass,
    pod_cgroup_path,
)
from oomguard.monitor.modes.node_agent import AgentOptions
from oomguard.monitor.modes.node_runtime import AgentParts, build_agent, run_parts
from oomguard.monitor.settings import EvictionSettings, NodeSettings
from oomguard.monitor.triggers.stop_signal import StopSignal

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "helm"))
from chart_tools import one, render  # tests/helm: the chart's own render helper

pytestmark = pytest.mark.apiserver

MI = 2**20
LOC = KubepodsLocation(CgroupDriver.SYSTEMD, PurePosixPath("kubepods.slice"))
GROUP, VERSION, PLURAL = "oomguard.io", "v1alpha1", "nodememoryreserves"


# ------------------------------------------------------------------ the agent's identity


@pytest.fixture(scope="module")
def chart_agent_rules(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The rules of the chart's agent ClusterRole, as helm renders them with default values."""
    objects = render(tmp_path_factory.mktemp("helm-home"), include_crds=False)
    role = one(objects, "ClusterRole", "-agent")
    rules: list[dict[str, Any]] = role["rules"]
    return rules


@dataclass(frozen=True)
class AgentIdentity:
    namespace: str
    service_account: str
    rules: list[dict[str, Any]]


@pytest.fixture(scope="module")
def agent_identity(
    control_plane: ControlPlane, chart_agent_rules: list[dict[str, Any]]
) -> Iterator[AgentIdentity]:
    """A ServiceAccount bound to a ClusterRole with the chart's agent rules, nothing more;
    the CRDs installed from helm/oomguard/crds."""
    install_crds(control_plane.api_client)
    core = CoreV1Api(control_plane.api_client)
    rbac = RbacAuthorizationV1Api(control_plane.api_client)
    namespace = create_namespace(core, unique_name("oomguard"))
    account = "oomguard-agent"
    ensure_service_account(core, namespace, account)
    role_name = unique_name("oomguard-agent-test")
    rbac.create_cluster_role(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role_name},
            "rules": chart_agent_rules,
        }
    )
    rbac.create_cluster_role_binding(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": role_name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role_name,
            },
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        }
    )
    wait_for_default_service_account(core, namespace)
    yield AgentIdentity(namespace, account, chart_agent_rules)
    rbac.delete_cluster_role_binding(role_name)
    rbac.delete_cluster_role(role_name)


def wait_for_default_service_account(core: CoreV1Api, namespace: str) -> None:
    """Pods are refused until the controller-manager made the namespace's "default" account."""
    wait_for(
        f"ServiceAccount default in {namespace}",
        lambda: any(
            sa.metadata.name == "default"
            for sa in core.list_namespaced_service_account(namespace).items
        ),
        timeout=30,
    )


def test_the_test_identity_has_exactly_the_chart_rules(
    control_plane: ControlPlane, agent_identity: AgentIdentity
) -> None:
    rbac = RbacAuthorizationV1Api(control_plane.api_client)
    bindings = [
        b
        for b in rbac.list_cluster_role_binding().items
        if any(
            s.kind == "ServiceAccount"
            and s.name == agent_identity.service_account
            and s.namespace == agent_identity.namespace
            for s in b.subjects or []
        )
    ]
    assert len(bindings) == 1
    role = rbac.read_cluster_role(bindings[0].role_ref.name)
    served = [control_plane.api_client.sanitize_for_serialization(r) for r in role.rules]
    assert served == agent_identity.rules
    verbs = {
        (group, resource, verb)
        for rule in agent_identity.rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    # what this module exercises; the chart's own tests pin the exact set
    assert ("", "pods/eviction", "create") in verbs
    assert ("oomguard.io", "nodememoryreserves/status", "patch") in verbs
    assert ("", "pods", "delete") not in verbs


# ------------------------------------------------------------------ a node with pods


# a pod's or kubepods' cgroup as the agent reads it: populated, idle memory.events, cgroup.kill
write_cgroup = partial(fake_cgroup_files, events_high=0, kill_file=True, populated=True)


@dataclass
class Node:
    """A Node object, the agent's own pod on it, and a fake kubepods tree for its memory."""

    cp: ControlPlane
    identity: AgentIdentity
    name: str
    tree: Path
    namespace: str
    agent_pod: client.V1Pod
    memory: dict[str, int]

    @property
    def admin(self) -> CoreV1Api:
        return CoreV1Api(self.cp.api_client)

    def pod(
        self, name: str, mib: int, age_s: int, namespace: str | None = None, **kw: Any
    ) -> client.V1Pod:
        """A running Burstable pod started ``age_s`` seconds ago, holding ``mib`` MiB."""
        started = datetime.now(UTC) - timedelta(seconds=age_s)
        pod = create_pod_on_node(
            self.admin,
            namespace or self.namespace,
            self.name,
            name,
            memory_request="16Mi",
            start_time=started,
            **kw,
        )
        self.place(pod, mib)
        return pod

    def place(self, pod: client.V1Pod, mib: int) -> None:
        assert pod.status.qos_class == "Burstable"
        write_cgroup(
            self.tree / pod_cgroup_path(pod.metadata.uid, QosClass.BURSTABLE, LOC), mib * MI
        )
        self.memory[pod.metadata.uid] = mib * MI
        self.set_usage(sum(self.memory.values()))

    def set_usage(self, total: int) -> None:
        (self.tree / "kubepods.slice" / "memory.current").write_text(f"{total}\n")

    def agent_client(self) -> client.ApiClient:
        """As the agent: its ServiceAccount, token bound to its pod (as the kubelet mounts it)."""
        token = request_token(
            self.admin,
            self.identity.namespace,
            self.identity.service_account,
            bound_pod=self.agent_pod,
        )
        return token_client(self.cp, token)

    def agent(
        self, settings: NodeSettings, *, reserve_watch: bool = False, monitors: Any = ()
    ) -> AgentParts:
        api = self.agent_client()
        options = AgentOptions(
            cgroup_root=self.tree,
            kubepods=LOC,
            self_uid=self.agent_pod.metadata.uid,
            margin_bytes=64 * MI,
            tick_seconds=0.2,
        )
        return build_agent(
            CoreV1Api(api),
            options,
            settings,
            monitors=None if monitors is None else list(monitors),
            custom_api=CustomObjectsApi(api) if reserve_watch else None,
            status_intervals=(0.5, 60.0),
        )

    def pod_now(self, pod: client.V1Pod) -> client.V1Pod:
        found: client.V1Pod = self.admin.read_namespaced_pod(
            pod.metadata.name, pod.metadata.namespace
        )
        return found

    def evicted(self, pod: client.V1Pod) -> bool:
        return self.pod_now(pod).metadata.deletion_timestamp is not None


def agent_pod_on(core: CoreV1Api, identity: AgentIdentity, node_name: str) -> client.V1Pod:
    """The agent's own pod (its ServiceAccount, so a token can be bound to it), Running."""
    pod = core.create_namespaced_pod(
        identity.namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name=unique_name("oomguard-agent")),
            spec=client.V1PodSpec(
                node_name=node_name,
                service_account_name=identity.service_account,
                containers=[
                    client.V1Container(
                        name="agent",
                        image=PAUSE_IMAGE,
                        resources=client.V1ResourceRequirements(requests={"memory": "16Mi"}),
                    )
                ],
            ),
        ),
    )
    running: client.V1Pod = set_pod_running(core, pod)
    return running


@pytest.fixture
def node(
    control_plane: ControlPlane, agent_identity: AgentIdentity, tmp_path: Path
) -> Iterator[Node]:
    core = CoreV1Api(control_plane.api_client)
    name = create_node(core, capacity={"cpu": "4", "memory": "2Gi", "pods": "110"}).metadata.name
    namespace = create_namespace(core)
    wait_for_default_service_account(core, namespace)
    write_cgroup(tmp_path / "kubepods.slice", 0, maximum=str(1000 * MI))
    agent_pod = agent_pod_on(core, agent_identity, name)
    n = Node(control_plane, agent_identity, name, tmp_path, namespace, agent_pod, {})
    n.place(agent_pod, 40)
    yield n
    core.delete_namespace(namespace)
    core.delete_node(name)


def settings_for(node: Node, **eviction: Any) -> NodeSettings:
    """node memory 1100Mi - reserve 100Mi, capped at memory.max 1000Mi - margin 64Mi: 936Mi;
    target 95%: 889Mi."""
    return NodeSettings(
        node_name=node.name,
        node_memory_bytes=1100 * MI,
        reserve_bytes=100 * MI,
        eviction=EvictionSettings(
            buffer_bytes=0, grace_period_seconds=30, kill_fallback_wait_seconds=600, **eviction
        ),
    )


@pytest.fixture
def stop() -> Iterator[StopSignal]:
    signal = StopSignal()
    yield signal
    signal.set()


def start_watch(parts: AgentParts, stop: StopSignal) -> None:
    threading.Thread(target=parts.watch.run, args=(stop,), daemon=True).start()
    assert parts.watch.synced.wait(30), "the agent's pod watch never listed"


def events_on(node: Node, pod: client.V1Pod) -> list[client.CoreV1Event]:
    found = node.admin.list_namespaced_event(
        pod.metadata.namespace, field_selector=f"involvedObject.uid={pod.metadata.uid}"
    )
    items: list[client.CoreV1Event] = found.items
    return items


# ------------------------------------------------------------------ the tests


def test_watches_its_own_nodes_pods_only(node: Node, stop: StopSignal) -> None:
    other = create_node(node.admin).metadata.name
    try:
        mine = node.pod(unique_name("mine"), 10, 60)
        theirs = create_pod_on_node(node.admin, node.namespace, other, unique_name("theirs"))
        parts = node.agent(settings_for(node))
        start_watch(parts, stop)
        assert mine.metadata.uid in parts.watch.snapshot()
        assert node.agent_pod.metadata.uid in parts.watch.snapshot()
        later_theirs = create_pod_on_node(node.admin, node.namespace, other, unique_name("t2"))
        later_mine = node.pod(unique_name("later"), 10, 0)
        wait_for(
            "the new pod on this node in the watch",
            lambda: later_mine.metadata.uid in parts.watch.snapshot(),
            timeout=20,
        )
        # One watch delivers in resourceVersion order: a watch that also saw the other node
        # would have delivered later_theirs (created first) before later_mine.
        seen = parts.watch.snapshot()
        assert theirs.metadata.uid not in seen and later_theirs.metadata.uid not in seen
        assert {p.node_name for p in seen.values()} == {node.name}
        assert parts.watch.connected
    finally:
        node.admin.delete_node(other)


def test_a_pod_cgroup_without_a_pod_object_relists_the_real_watch(
    node: Node, stop: StopSignal
) -> None:
    """A pod cgroup on this node's disk whose pod the watch does not show (here a pod of
    another node, so it never will): the agent asks, the real watch is broken off and the
    pods are listed again at once, without an error and well before the watch's own 50 s
    end; once, not at every step; and the watch goes on delivering."""
    other = create_node(node.admin).metadata.name
    try:
        stray = create_pod_on_node(node.admin, node.namespace, other, unique_name("stray"))
        parts = node.agent(settings_for(node))
        start_watch(parts, stop)
        write_cgroup(node.tree / pod_cgroup_path(stray.metadata.uid, QosClass.BURSTABLE, LOC), MI)

        def stepped_and_relisted() -> bool:
            parts.agent.step()
            return parts.watch.relists >= 1

        wait_for("a relist asked for and done", stepped_and_relisted, timeout=30)
        assert parts.watch.errors == 0
        later = node.pod(unique_name("later"), 10, 0)
        wait_for(
            "a new pod in the watch after the relist",
            lambda: later.metadata.uid in parts.watch.snapshot(),
            timeout=20,
        )
        parts.agent.step()
        assert parts.watch.relists == 1  # at most once per 30 s
        assert parts.agent.metrics is not None
        body = parts.agent.metrics.exposition().decode()
        restarts = [
            s.value
            for f in text_string_to_metric_families(body)
            for s in f.samples
            if s.name == "oomguard_watch_restarts_total"
            and s.labels == {"watch": "pods", "reason": "unmatched_cgroup"}
        ]
        assert restarts == [1.0]
    finally:
        node.admin.delete_node(other)


def test_evicts_newest_unprotected_skips_pdb_and_posts_events(node: Node, stop: StopSignal) -> None:
    policy = PolicyV1Api(node.cp.api_client)
    old = node.pod("old", 300, 500)
    mid = node.pod("mid", 300, 400)
    guarded = node.pod("guarded", 250, 300, labels={"app": "guarded"})
    protected = node.pod("protected", 100, 200, annotations={"oomguard.io/protect": "true"})
    # the agent's own pod is the newest of all: it must never be chosen
    assert node.agent_pod.status.start_time > protected.status.start_time
    policy.create_namespaced_pod_disruption_budget(
        node.namespace,
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "guarded"},
            # minAvailable 1 of 1 pod: no disruption allowed (an integer minAvailable needs no
            # controller behind the pod, unlike maxUnavailable)
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}},
        },
    )

    def pdb_computed() -> bool:
        pdb = policy.read_namespaced_pod_disruption_budget("guarded", node.namespace)
        status = pdb.status
        return bool(
            status
            and status.observed_generation == pdb.metadata.generation
            and status.expected_pods == 1
            and status.disruptions_allowed == 0
        )

    wait_for("the disruption controller to compute the PDB", pdb_computed, timeout=60)

    parts = node.agent(settings_for(node, protect_annotation_namespaces=(node.namespace,)))
    start_watch(parts, stop)
    agent = parts.agent
    # usage 990Mi (incl. the agent's own 40Mi) vs target 889Mi: 101Mi to free = one pod.
    # Newest first: the agent itself and "protected" may not go, "guarded" gets a 429 from
    # its PDB, so "mid" goes.
    assert sum(node.memory.values()) == 990 * MI
    decision = agent.step("event")
    assert decision is not None and decision.outcome is Decided.VICTIMS
    assert agent.counters["blocked"] == 1 and agent.counters["evicted"] == 1
    assert node.evicted(mid)
    assert not node.evicted(guarded)
    assert not node.evicted(protected)
    assert not node.evicted(old)
    assert not node.evicted(node.agent_pod)

    events = events_on(node, mid)
    assert [e.reason for e in events] == ["OOMGuardEviction"]
    message = events[0].message
    assert "Evicted by oomguard" in message and node.name in message and "300.0Mi" in message
    assert events[0].source.component == "oomguard"
    assert events_on(node, guarded) == []  # blocked: nothing happened to it
    assert events_on(node, protected) == []

    status = agent.status()
    protected_names = {p["pod"] for p in status["protected"]}
    assert f"{node.namespace}/protected" in protected_names
    assert f"{node.identity.namespace}/{node.agent_pod.metadata.name}" in protected_names
    # the watch delivers the deletionTimestamp: the evicted pod counts as on its way out
    wait_for(
        "the eviction to reach the watch",
        lambda: parts.watch.snapshot()[mid.metadata.uid].deleting,
        timeout=20,
    )
    again = agent.step("event")
    # mid's memory counts as on its way out: nothing more to free
    assert again is not None and again.outcome is Decided.NOTHING_TO_FREE, again
    assert "dying" in again.reason
    assert agent.counters["evicted"] == 1 and not node.evicted(old)


def test_rate_limit_caps_evictions(node: Node, stop: StopSignal) -> None:
    pods = [node.pod(f"p{i}", 300, 100 - i * 10) for i in range(3)]
    node.set_usage(1240 * MI)  # 351Mi over target: two pods' worth
    parts = node.agent(settings_for(node, max_evictions_per_minute=1))
    start_watch(parts, stop)
    decision = parts.agent.step("event")
    assert decision is not None and len(decision.victims) == 2
    assert [node.evicted(p) for p in pods] == [False, False, True]  # newest only
    assert parts.agent.counters["evicted"] == 1
    assert parts.agent.counters["rate_limited"] == 1
    # the evicted pod finishes (what the kubelet would do: containers gone, object deleted)
    gone = pods[2]
    node.admin.delete_namespaced_pod(gone.metadata.name, node.namespace, grace_period_seconds=0)
    node.memory.pop(gone.metadata.uid)
    (node.tree / pod_cgroup_path(gone.metadata.uid, QosClass.BURSTABLE, LOC)).rename(
        node.tree / "gone"
    )
    node.set_usage(940 * MI)  # still 51Mi over target
    wait_for(
        "the deletion to reach the watch",
        lambda: gone.metadata.uid not in parts.watch.snapshot(),
        timeout=20,
    )
    # a new round within the same minute: the next pod is due, but the budget is spent
    decision = parts.agent.step("event")
    assert decision is not None and [v.name for v in decision.victims] == [f"{node.namespace}/p1"]
    assert not node.evicted(pods[1]) and not node.evicted(pods[0])
    assert parts.agent.counters["rate_limited"] == 2
    assert parts.agent.counters["evicted"] == 1


# ------------------------------------------------------------------ NodeMemoryReserve


def reserve_body(node: Node, reserve_mib: int) -> dict[str, Any]:
    settings = NodeSettings(
        node_name=node.name,
        node_memory_bytes=2000 * MI,
        reserve_bytes=reserve_mib * MI,
        source_policy="test-policy",
        eviction=EvictionSettings(buffer_bytes=0, kill_fallback_wait_seconds=600),
    )
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "NodeMemoryReserve",
        "metadata": {"name": node.name},
        "spec": settings.to_spec(),
    }


def memory_high(node: Node) -> str:
    return (node.tree / "kubepods.slice" / "memory.high").read_text().strip()


def metric(parts: AgentParts, name: str) -> float | None:
    """One unlabelled sample from what the agent's /metrics serves."""
    assert parts.agent.metrics is not None
    body = parts.agent.metrics.exposition().decode()
    found = [
        s.value for f in text_string_to_metric_families(body) for s in f.samples if s.name == name
    ]
    return found[0] if found else None


def test_reserve_live_reload_and_status(node: Node, stop: StopSignal) -> None:
    custom = CustomObjectsApi(node.cp.api_client)  # the operator's part, as admin
    (node.tree / "kubepods.slice" / "memory.max").write_text("max\n")
    fallback = replace(settings_for(node), node_memory_bytes=2000 * MI, reserve_bytes=500 * MI)
    parts = node.agent(fallback, reserve_watch=True, monitors=None)
    runner = threading.Thread(target=run_parts, args=(parts, stop), daemon=True)
    runner.start()
    try:
        # no object: built-in (command line) settings, and the agent says so
        wait_for("memory.high from the fallback", lambda: memory_high(node) == str(1500 * MI))
        assert parts.agent.status()["settings"]["from_defaults"] is True
        assert "no NodeMemoryReserve" in parts.agent.status()["settings"]["source"]

        created_at = time.monotonic()
        custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, reserve_body(node, 300))
        wait_for(
            "memory.high from the new reserve",
            lambda: memory_high(node) == str(1700 * MI),
            timeout=30,
            interval=0.05,
        )
        reload_seconds = time.monotonic() - created_at
        assert metric(parts, "oomguard_memory_high_bytes") == 1700 * MI  # and in its metrics

        def status() -> dict[str, Any]:
            obj = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, node.name)
            found: dict[str, Any] = obj.get("status") or {}
            return found

        first = wait_for(
            "the agent's status for generation 1",
            lambda: (s := status()).get("observedGeneration") == 1 and s,
            timeout=30,
        )
        assert first["guardedCgroup"] == "kubepods.slice"
        assert first["memoryHighBytes"] == 1700 * MI
        assert first["usageBytes"] == 40 * MI
        assert first["memoryEvents"]["oomKill"] == 0
        conditions = {c["type"]: c for c in first["conditions"]}
        assert conditions["Enforcing"]["status"] == "True"
        assert conditions["Degraded"]["status"] == "False"
        assert conditions["Enforcing"]["observedGeneration"] == 1
        assert parts.agent.status()["settings"]["policy"] == "test-policy"
        assert parts.agent.status()["monitors"]["running"] == ["event", "threshold"]

        # a decision shows up as lastDecision
        victim = node.pod("victim", 1700, 5)
        wait_for("the pod evicted", lambda: node.evicted(victim), timeout=30)
        decided = wait_for(
            "lastDecision in the status",
            lambda: status().get("lastDecision"),
            timeout=30,
        )
        assert decided["action"] == "Evicted"
        assert decided["victims"] == [f"{node.namespace}/victim"]
        assert decided["trigger"] in ("event", "threshold")
        assert isinstance(decided["protectedMemoryBytes"], int)  # kept by the schema, not pruned

        # a new spec: memory.high moves, observedGeneration follows
        custom.patch_cluster_custom_object(
            GROUP, VERSION, PLURAL, node.name, {"spec": {"reserveBytes": 800 * MI}}
        )
        wait_for("memory.high from generation 2", lambda: memory_high(node) == str(1200 * MI))
        wait_for(
            "the status for generation 2",
            lambda: status().get("observedGeneration") == 2,
            timeout=30,
        )

        # deleted: back to the fallback
        custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, node.name)
        wait_for("memory.high back to the fallback", lambda: memory_high(node) == str(1500 * MI))
        assert parts.agent.status()["settings"]["from_defaults"] is True
    finally:
        stop.set()
        runner.join(15)
    assert not runner.is_alive()
    assert memory_high(node) == "max"  # restored on the way out
    assert parts.status_reporter is not None and parts.status_reporter.errors == 0
    print(f"reserve created -> memory.high rewritten in {reload_seconds:.2f}s")


def test_agent_cannot_write_the_reserve_spec(node: Node) -> None:
    """The status subresource is the agent's; the spec is the operator's."""
    CustomObjectsApi(node.cp.api_client).create_cluster_custom_object(
        GROUP, VERSION, PLURAL, reserve_body(node, 300)
    )
    try:
        as_agent = CustomObjectsApi(node.agent_client())
        with pytest.raises(ApiException) as denied:
            as_agent.patch_cluster_custom_object(
                GROUP, VERSION, PLURAL, node.name, {"spec": {"reserveBytes": 1}}
            )
        assert denied.value.status == 403
        as_agent.patch_cluster_custom_object_status(
            GROUP, VERSION, PLURAL, node.name, {"status": {"usageBytes": 1}}
        )
    finally:
        CustomObjectsApi(node.cp.api_client).delete_cluster_custom_object(
            GROUP, VERSION, PLURAL, node.name
        )


def test_memory_pressure_in_the_reserve_status(node: Node, stop: StopSignal) -> None:
    """MemoryPressure=True as soon as the agent set out to evict; False the cooldown after
    the episode ended: what the operator turns into the node's taint."""
    custom = CustomObjectsApi(node.cp.api_client)
    (node.tree / "kubepods.slice" / "memory.max").write_text("max\n")
    body = reserve_body(node, 300)
    body["spec"]["eviction"]["pressureCooldownSeconds"] = 3
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
    parts = node.agent(settings_for(node), reserve_watch=True, monitors=None)
    runner = threading.Thread(target=run_parts, args=(parts, stop), daemon=True)
    runner.start()

    def pressure() -> dict[str, Any] | None:
        obj = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, node.name)
        found = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
        condition = found.get("MemoryPressure")
        return dict(condition) if condition else None

    try:
        calm = wait_for("the first status", pressure, timeout=30)
        assert (calm["status"], calm["reason"]) == ("False", "NoRecentEvictions")
        victim = node.pod("victim", 1700, 5)
        wait_for("the pod evicted", lambda: node.evicted(victim), timeout=30, interval=0.05)
        evicted_at = time.monotonic()
        pressed = wait_for(
            "MemoryPressure=True",
            lambda: (p := pressure() or {}).get("status") == "True" and p,
            timeout=10,
            interval=0.05,
        )
        reported_after = time.monotonic() - evicted_at
        assert pressed["reason"] in ("Evicting", "CoolingDown")
        # reported as the eviction went out; the count follows the answer (debounced)
        wait_for(
            "the eviction counted in MemoryPressure's message",
            lambda: "1 pod(s) evicted or killed" in (pressure() or {}).get("message", ""),
            timeout=10,
            interval=0.05,
        )
        # the evicted pod ends (the kubelet's part): its cgroup and its memory go
        node.admin.delete_namespaced_pod(
            victim.metadata.name, node.namespace, grace_period_seconds=0
        )
        node.memory.pop(victim.metadata.uid)
        cgroup = node.tree / pod_cgroup_path(victim.metadata.uid, QosClass.BURSTABLE, LOC)
        cgroup.rename(node.tree / "gone")
        node.set_usage(sum(node.memory.values()))
        gone_at = time.monotonic()
        cleared = wait_for(
            "MemoryPressure=False after the cooldown",
            lambda: (p := pressure() or {}).get("status") == "False" and p,
            timeout=30,
            interval=0.05,
        )
        cleared_after = time.monotonic() - gone_at
        assert cleared["reason"] == "NoRecentEvictions"
        assert cleared_after >= 3  # not before the cooldown
    finally:
        stop.set()
        runner.join(15)
    # written at once, not after min_interval, and gone within cooldown + tick + a write
    assert reported_after < 2, reported_after
    assert cleared_after < 3 + 5, cleared_after
    print(
        f"eviction -> MemoryPressure=True in {reported_after:.2f}s; "
        f"gone -> False in {cleared_after:.2f}s"
    )
