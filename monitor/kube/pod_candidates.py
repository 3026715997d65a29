"""Pods on this node -> decision candidates: who may be evicted, how new each is, what it holds.

Pure: pod objects come in as the API server's JSON (plain dicts), per-pod memory as a map
uid -> bytes measured from the pod cgroups. Rules that live here:

- Start time is ``status.startTime`` (the kubelet's acknowledgement of the pod). A pod without
  one has not been started by the kubelet yet, so it has no cgroup and holds no memory; it
  falls back to ``metadata.creationTimestamp`` so it still sorts somewhere sensible, and the
  decision skips it anyway for holding nothing.
- Protected (never evicted): mirror/static pods, priority >= 2000000000 (system-node-critical
  and system-cluster-critical), the agent's own pod, DaemonSet pods unless allowed (they come
  straight back on the same node), pods annotated ``oomguard.io/protect: "true"``, and pods in
  configured namespaces.
- Pods with a ``deletionTimestamp`` are dying: their memory is on its way out.
- Pods that already finished (Succeeded/Failed) are left out: there is nothing to free.
- Optional QoS preference: BestEffort before Burstable before Guaranteed, newest first within
  a class. Off by default: newest first alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from oomguard.monitor.decision.candidate import Candidate
from oomguard.monitor.kube.pod_cgroups import QosClass
from oomguard.monitor.kube.victim_order import QOS_PREFERENCE_RANK as QOS_PREFERENCE_RANK
from oomguard.monitor.kube.victim_order import preference_rank
from oomguard.wire.node_settings import EvictionPolicy

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
PROTECT_ANNOTATION = "oomguard.io/protect"
CRITICAL_PRIORITY = 2_000_000_000
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True)
class PodInfo:
    """The few fields of a pod the agent decides on."""

    uid: str
    namespace: str
    name: str
    node_name: str
    qos: QosClass
    started_at: float  # epoch seconds: status.startTime, else metadata.creationTimestamp
    has_start_time: bool
    priority: int | None = None
    deleting: bool = False
    phase: str = "Pending"
    owner_kinds: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ProtectionRules:
    """Which pods are never evicted, beyond the fixed rules (mirror, critical priority)."""

    self_uid: str | None = None
    self_key: str | None = None  # namespace/name of the agent's own pod, when the uid is unknown
    protect_daemonset_pods: bool = True
    protected_namespaces: frozenset[str] = frozenset()
    # where the oomguard.io/protect annotation counts ("*": everywhere); nowhere by default,
    # so a pod author cannot make a pod unevictable on their own
    annotation_namespaces: frozenset[str] = frozenset()


def parse_time(value: str) -> float:
    """RFC 3339 as the API server writes it (``2024-01-02T03:04:05Z``) -> epoch seconds."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _quantity_set(resources: Mapping[str, Any], kind: str, name: str) -> str | None:
    value = (resources.get(kind) or {}).get(name)
    return None if value is None else str(value)


def qos_from_spec(spec: Mapping[str, Any]) -> QosClass:
    """The kubelet's QoS rule, for the rare pod object without ``status.qosClass``.

    Guaranteed: every container has cpu and memory limits, and requests (when given) equal
    them. BestEffort: no container requests or limits anything. Burstable: the rest.
    Quantities compare as text: the API server stores them in canonical form (``1024Mi`` is
    written back as ``1Gi``), so equal amounts are equal strings.
    """
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    any_set = False
    guaranteed = bool(containers)
    for container in containers:
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            if resources.get(kind):
                any_set = True
        for name in ("cpu", "memory"):
            limit = _quantity_set(resources, "limits", name)
            request = _quantity_set(resources, "requests", name)
            if limit is None or (request is not None and request != limit):
                guaranteed = False
    if not any_set:
        return QosClass.BEST_EFFORT
    return QosClass.GUARANTEED if guaranteed else QosClass.BURSTABLE


def pod_info_from_dict(pod: Mapping[str, Any]) -> PodInfo:
    """Read a pod object (API JSON) into a PodInfo; missing optional fields get safe defaults."""
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    qos_text = status.get("qosClass")
    qos = QosClass(qos_text) if qos_text else qos_from_spec(spec)
    start = status.get("startTime")
    created = metadata.get("creationTimestamp")
    if start:
        started_at = parse_time(start)
    elif created:
        started_at = parse_time(created)
    else:
        started_at = 0.0
    return PodInfo(
        uid=metadata["uid"],
        namespace=metadata.get("namespace", "default"),
        name=metadata["name"],
        node_name=spec.get("nodeName") or "",
        qos=qos,
        started_at=started_at,
        has_start_time=bool(start),
        priority=spec.get("priority"),
        deleting=metadata.get("deletionTimestamp") is not None,
        phase=status.get("phase") or "Pending",
        owner_kinds=tuple(o.get("kind", "") for o in metadata.get("ownerReferences") or []),
        annotations=dict(metadata.get("annotations") or {}),
    )


def protection_reason(pod: PodInfo, rules: ProtectionRules) -> str | None:
    """Why this pod must never be evicted, or None if it may be."""
    if MIRROR_ANNOTATION in pod.annotations:
        return "static (mirror) pod"
    if pod.priority is not None and pod.priority >= CRITICAL_PRIORITY:
        return f"priority {pod.priority} >= {CRITICAL_PRIORITY} (critical)"
    if (rules.self_uid is not None and pod.uid == rules.self_uid) or (
        rules.self_key is not None and pod.key == rules.self_key
    ):
        return "the oomguard agent itself"
    if pod.annotations.get(PROTECT_ANNOTATION, "").strip().lower() == "true" and (
        "*" in rules.annotation_namespaces or pod.namespace in rules.annotation_namespaces
    ):
        return f'annotation {PROTECT_ANNOTATION}: "true"'
    if pod.namespace in rules.protected_namespaces:
        return f"namespace {pod.namespace} is protected"
    if rules.protect_daemonset_pods and "DaemonSet" in pod.owner_kinds:
        return "owned by a DaemonSet (it would come straight back)"
    return None


def pod_candidate(
    pod: PodInfo, memory_bytes: int, rules: ProtectionRules, order: EvictionPolicy | bool
) -> Candidate:
    """``order``: the victim order (``True``/``False``: QoS then newest / newest first)."""
    if isinstance(order, bool):
        order = EvictionPolicy.QOS_THEN_NEWEST if order else EvictionPolicy.NEWEST_FIRST
    return Candidate(
        id=pod.uid,
        name=pod.key,
        started_at=pod.started_at,
        memory_bytes=memory_bytes,
        protected=protection_reason(pod, rules) is not None,
        dying=pod.deleting,
        preference_rank=preference_rank(order, pod.qos),
    )


def pod_candidates(
    pods: Iterable[PodInfo],
    memory_by_uid: Mapping[str, int],
    rules: ProtectionRules,
    order: EvictionPolicy | bool = EvictionPolicy.NEWEST_FIRST,
) -> list[Candidate]:
    """One candidate per live pod; a pod whose cgroup was not found holds 0 bytes."""
    return [
        pod_candidate(pod, memory_by_uid.get(pod.uid, 0), rules, order)
        for pod in pods
        if pod.phase not in TERMINAL_PHASES
    ]
