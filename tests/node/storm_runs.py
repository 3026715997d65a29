"""The storm run on a node bed, either cgroup driver: its pods started one after another, the
storm's one Deployment among them, how each pod ended; and the control, the same storm with
no guard.

``StormBed`` is what differs between the beds: where kubepods is (``kubepods`` or
``kubepods.slice``) and how the guest sees the hostPath the storm's pods share with the test
(``Node.seen``). The pure parts (manifests, endings, "newest first") are in
``storm_pods.py``.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chart_release import MI, kubepods_current, kubepods_event, kubepods_max
from k8s_helpers import create_namespace, wait_for
from kubernetes.client import AppsV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException
from node_bed import NODE_NAME, PYTHON_IMAGE, Node, progress
from storm_pods import (
    PRESSURE_TAINT,
    REPLICATED,
    Ending,
    StormPlan,
    ending,
    is_final,
    replicated_pod,
    replicated_size_mib,
)

# Large enough that a storm is a handful of pods (each pod's start costs tens of seconds
# under emulation, more as kubepods nears its line)
STORM_POD_MIB = 1024


@dataclass(frozen=True)
class StormBed:
    node: Node
    core: CoreV1Api
    kubepods: Path  # kubepods' cgroup directory as the guest sees it

    def headroom(self) -> int:
        """Bytes kubepods may still grow before the kernel's limit."""
        return kubepods_max(self.kubepods) - kubepods_current(self.kubepods)

    def oom_kills(self) -> int:
        return kubepods_event("oom_kill", self.kubepods)

    def line(self) -> int:
        return int((self.kubepods / "memory.high").read_text())


def storm_plan(bed: StormBed, namespace: str) -> StormPlan:
    """Enough pods to pass kubepods' memory.max by two pods' worth."""
    return StormPlan(
        namespace=namespace,
        count=math.ceil(bed.headroom() / (STORM_POD_MIB * MI)) + 2,
        size_mib=STORM_POD_MIB,
        image=PYTHON_IMAGE,
        host_dir=f"/run/oomguard-storm/{namespace}",
    )


def evicted_names(core: CoreV1Api, namespace: str) -> set[str]:
    events = core.list_namespaced_event(namespace, field_selector="reason=OOMGuardEviction")
    return {str(e.involved_object.name) for e in events.items}


def pressure_tainted(core: CoreV1Api) -> bool:
    node = core.read_node(NODE_NAME)
    return any(t.key == PRESSURE_TAINT for t in node.spec.taints or [])


@dataclass(frozen=True)
class StormRun:
    """How each storm pod ended, and the times "newest first" is judged by (epoch seconds)."""

    plan: StormPlan
    endings: list[Ending]
    running_since: list[float]  # when the test saw pod i Running (or already past it)
    released_at: float  # when the pods were told to finish


def started(core: CoreV1Api, namespace: str, name: str) -> bool:
    """Running, or already past it (a pod the guard stopped early counts as started)."""
    try:
        pod = core.read_namespaced_pod(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return pod.status.phase in ("Running", "Succeeded", "Failed")


def replicated_evictions(core: CoreV1Api, namespace: str) -> list[str]:
    """The storm Deployment's pods the agent evicted."""
    return sorted(n for n in evicted_names(core, namespace) if replicated_pod(n))


def replicated_held_back(core: CoreV1Api, namespace: str) -> bool:
    """Is a pod of the storm's Deployment kept off the node by our taint: unschedulable for an
    untolerated taint while the node carries ours (the scheduler's message counts the nodes,
    it need not name the taint)?"""
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={REPLICATED}").items
    unschedulable = any(
        c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable"
        and "untolerated taint" in (c.message or "")
        for pod in pods
        for c in pod.status.conditions or []
    )  # fmt: skip
    return unschedulable and pressure_tainted(core)


def start_replicated(bed: StormBed, plan: StormPlan, size_mib: int) -> None:
    """The storm's Deployment, as its newest pod: wait until the agent evicted its pod, and
    until a replacement is kept off the node by the memory-pressure taint (the first one may
    land in the moment before the taint; it is then the newest pod, and evicted in turn)."""
    AppsV1Api(bed.node.cp.api_client).create_namespaced_deployment(
        plan.namespace, plan.replicated_manifest(size_mib)
    )
    progress(f"{plan.namespace}: {REPLICATED} created ({size_mib} MiB)")
    wait_for(
        f"{REPLICATED}'s pod evicted",
        lambda: replicated_evictions(bed.core, plan.namespace),
        timeout=600,
        interval=2,
    )
    wait_for(
        f"a replacement of {REPLICATED} kept off the node by {PRESSURE_TAINT}",
        lambda: replicated_held_back(bed.core, plan.namespace),
        timeout=600,
        interval=2,
    )
    evictions = replicated_evictions(bed.core, plan.namespace)
    progress(f"{plan.namespace}: {REPLICATED} evicted {evictions}, a replacement held back")


def start_storm_pods(bed: StormBed, plan: StormPlan, replicated: bool) -> list[float]:
    """Create the plan's pods one after another, each once the one before runs (so age order
    is creation order), with the storm's Deployment where the next bare pod would near the
    line (``replicated``); say when each bare pod was seen Running."""
    core, running_since = bed.core, []
    committed, line, placed = kubepods_current(bed.kubepods), bed.line(), not replicated
    for i in range(plan.count):
        size = None if placed else replicated_size_mib(line, committed, plan.size_mib)
        if size is not None:
            start_replicated(bed, plan, size)
            placed = True
        core.create_namespaced_pod(plan.namespace, plan.manifest(i))
        name = plan.name(i)
        wait_for(f"{name} running", lambda n=name: started(core, plan.namespace, n), timeout=300)
        running_since.append(time.time())
        committed += plan.size_mib * MI
        progress(f"{plan.namespace}: {name} of {plan.count} started")
    assert placed, f"the storm never came near the line {line} for {REPLICATED}"
    return running_since


def storm_states(core: CoreV1Api, plan: StormPlan) -> list[dict[str, Any] | None]:
    """Each storm pod's last state, None once it is gone."""
    states: list[dict[str, Any] | None] = []
    for i in range(plan.count):
        try:
            pod = core.read_namespaced_pod(plan.name(i), plan.namespace)
            states.append(core.api_client.sanitize_for_serialization(pod))
        except ApiException as exc:
            if exc.status != 404:
                raise
            states.append(None)
    return states


def full_or_final(bed: StormBed, plan: StormPlan, states: list[dict[str, Any] | None]) -> bool:
    """The storm's peak: every pod holds all its memory (its ``.full`` file) or is final."""
    return all(
        is_final(state) or bed.node.seen(plan.full_file(i)).exists()
        for i, state in enumerate(states)
    )


def run_storm(bed: StormBed, plan: StormPlan, taint_seen: list[bool]) -> StormRun:
    """Start the storm's pods and its Deployment; once every bare pod is full or final, let
    them finish; say how each ended."""
    core, namespace = bed.core, plan.namespace
    create_namespace(core, namespace)
    running_since = start_storm_pods(bed, plan, replicated=True)

    def last_states() -> list[dict[str, Any] | None]:
        if not taint_seen and pressure_tainted(core):
            taint_seen.append(True)
            progress(f"{namespace}: the node carries {PRESSURE_TAINT}")
        return storm_states(core, plan)

    wait_for(
        "every storm pod full (holding all its memory) or final",
        lambda: full_or_final(bed, plan, last_states()),
        timeout=900,
        interval=2,
    )
    released_at = time.time()
    bed.node.seen(plan.release_file).touch()
    progress(f"{namespace}: every pod full or final; released")

    def all_final() -> list[dict[str, Any] | None] | None:
        states = last_states()
        return states if all(is_final(s) for s in states) else None

    states = wait_for(
        "every storm pod completed, evicted or killed", all_final, timeout=600, interval=2
    )
    evicted = evicted_names(core, namespace)
    endings = [ending(s, plan.name(i) in evicted) for i, s in enumerate(states)]
    progress(f"{namespace}: " + ", ".join(f"{i}={e.value}" for i, e in enumerate(endings)))
    return StormRun(plan, endings, running_since, released_at)


def replicated_full(bed: StormBed, plan: StormPlan) -> str | None:
    """The name of a running pod of the storm's Deployment that holds all its memory."""
    pods = bed.core.list_namespaced_pod(plan.namespace, label_selector=f"app={REPLICATED}")
    for pod in pods.items:
        name = str(pod.metadata.name)
        full = bed.node.seen(f"{plan.host_dir}/{name}.full")
        if pod.status.phase == "Running" and full.exists():
            return name
    return None


def end_replicated(bed: StormBed, namespace: str) -> None:
    """Delete the storm's Deployment and wait until its pods are gone (their memory with
    them)."""
    AppsV1Api(bed.node.cp.api_client).delete_namespaced_deployment(REPLICATED, namespace)
    wait_for(
        f"{REPLICATED}'s pods gone",
        lambda: (
            not bed.core.list_namespaced_pod(namespace, label_selector=f"app={REPLICATED}").items
        ),
        timeout=300,
        interval=2,
    )


def clear_storm(bed: StormBed, plan: StormPlan) -> None:
    """Whatever a storm left in its namespace gone, its memory with it (after a failure: the
    tests after it need the node's memory and an untainted node)."""
    with contextlib.suppress(OSError):
        bed.node.seen(plan.release_file).touch()
    with contextlib.suppress(ApiException):
        AppsV1Api(bed.node.cp.api_client).delete_namespaced_deployment(REPLICATED, plan.namespace)
    # grace 1, not 0: 0 drops the pods from the API before the kubelet has stopped them
    bed.core.delete_collection_namespaced_pod(plan.namespace, grace_period_seconds=1)
    wait_for(
        "the storm's pods gone",
        lambda: not bed.core.list_namespaced_pod(plan.namespace).items,
        timeout=300,
        interval=2,
    )


def run_unguarded_storm(bed: StormBed, namespace: str) -> tuple[int, set[str]]:
    """The control: the same storm's pods, started together with no guard on the node, until
    the first kernel OOM kill in kubepods (or every pod full or final); then deleted. Returns
    the kernel's OOM kills in kubepods and the pods something evicted."""
    core = bed.core
    oom_kills = bed.oom_kills()
    create_namespace(core, namespace)
    plan = storm_plan(bed, namespace)
    for i in range(plan.count):
        core.create_namespaced_pod(namespace, plan.manifest(i))
    progress(f"{namespace}: {plan.count} pods created")
    # the proof is the first kernel OOM kill; without one the storm runs until every pod is
    # full or final, and the caller's assertion fails
    wait_for(
        "a kernel OOM kill in kubepods, or every storm pod full or final",
        lambda: bed.oom_kills() > oom_kills or full_or_final(bed, plan, storm_states(core, plan)),
        timeout=900,
        interval=2,
    )
    killed, evicted = bed.oom_kills() - oom_kills, evicted_names(core, namespace)
    progress(f"{namespace}: kernel OOM kills in kubepods: {killed}")
    clear_storm(bed, plan)  # before the next test needs the memory
    return killed, evicted
