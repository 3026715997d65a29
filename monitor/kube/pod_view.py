"""Blind spots in the node agent's pod view, and what to do about each. Pure: plain data in,
plain data out, the clock passed in.

The agent knows pods from the API watch and pod cgroups from disk. Two gaps between them:

1. **A pod cgroup without a pod object** (:func:`unmatched_cgroups`): the watch missed a pod
   (a lost event, a stall the read timeout has not caught yet). Such a pod can never be a
   victim, so the agent asks the watch to list again (:func:`relist_due`) once the cgroup has
   had no pod object for :data:`UNMATCHED_GRACE` seconds (:func:`lasting_unmatched`: the
   kubelet makes a new pod's cgroup about when the agent hears of the pod, and removes a
   deleted one's about when the object goes, so a churning node is not relisted at every
   pod), and at most once per :data:`RELIST_MIN_INTERVAL` seconds: a cgroup that never gets
   a pod object (a pod deleted while the kubelet tears its cgroup down, a static pod whose
   mirror pod the API server has not got yet) costs one list every 30 s, never a storm. A
   static pod's cgroup is named by its config hash, which its mirror pod carries in
   ``kubernetes.io/config.mirror`` (and ``kubernetes.io/config.hash``): that counts as a
   match.

2. **No pod view at all** (:func:`pod_view_blind`): an agent started while the API server is
   down has no pod objects, so no candidates; one disconnected for long does not see pods
   started since. Then :func:`kill_only_candidates` builds candidates from the pod cgroups
   on disk that no pod object covers. They have no name, so they cannot be evicted, only
   ``cgroup.kill``ed by the kill fallback, newest first, at its rate. Without the API their
   namespace, priority and annotations are unknown, so the protection rules cannot be
   applied; instead they are offered only under the rule the kernel itself follows:

   - only while usage is at or above the guarded line (kubepods ``memory.high``, the
     ``line`` argument): there the kernel already throttles every pod, and the OOM killer,
     which does not know namespaces either, is next; below it the agent waits for the API;
   - never a Guaranteed pod's cgroup (directly under kubepods): the kubelet gives those, like
     node-critical pods, ``oom_score_adj`` -997, so the kernel spares them too (the chart
     makes the agent Guaranteed, and pods that ask for a fixed amount usually are);
   - never a static pod (its UID is a config hash, not a UUID: on a control-plane node the
     API server, etcd and the scheduler are static pods), never the agent's own pod.

   Those stay candidates, protected, so what they hold is still said.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from oomguard.monitor.decision.candidate import Candidate
from oomguard.monitor.kube.pod_candidates import MIRROR_ANNOTATION, PodInfo
from oomguard.monitor.kube.pod_cgroups import QosClass

CONFIG_HASH_ANNOTATION = "kubernetes.io/config.hash"  # a mirror pod carries it too

RELIST_MIN_INTERVAL = 30.0
"""Seconds between two relists asked for because of a cgroup without a pod object."""

UNMATCHED_GRACE = 5.0
"""Seconds a pod cgroup must have had no pod object before it asks for a relist."""

BLIND_AFTER_SECONDS = 120.0
"""How long the pod view may be disconnected before kill-only candidates are used: twice
the watch's stall bound (60 s), so one lost connection that the watch repairs by itself
does not switch to them."""

KILL_ONLY_PREFIX = "cgroup:"
"""A kill-only candidate's name: this, then the pod cgroup's path (it has no pod name)."""

_HEX = "[0-9a-fA-F]"
_API_UID = re.compile(rf"^{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}$")


@dataclass(frozen=True)
class CgroupPod:
    """What disk alone says about a pod: its cgroup's UID, QoS class, path, when the cgroup
    was made (wall clock, epoch seconds) and the memory it holds."""

    uid: str
    qos: QosClass
    path: str
    started_at: float
    memory_bytes: int


def known_uids(pods: Iterable[PodInfo]) -> frozenset[str]:
    """The pod cgroup UIDs the pod objects account for: their UIDs, and for mirror pods the
    static pod's config hash (the kubelet names the static pod's cgroup after it)."""
    known: set[str] = set()
    for pod in pods:
        known.add(pod.uid)
        for annotation in (MIRROR_ANNOTATION, CONFIG_HASH_ANNOTATION):
            value = pod.annotations.get(annotation)
            if value:
                known.add(value)
    return frozenset(known)


def unmatched_cgroups(cgroup_uids: Iterable[str], pods: Iterable[PodInfo]) -> frozenset[str]:
    """The pod cgroups on disk that no pod object matches."""
    known = known_uids(pods)
    return frozenset(uid for uid in cgroup_uids if uid not in known)


def lasting_unmatched(
    unmatched: Iterable[str],
    first_seen: Mapping[str, float],
    now: float,
    grace: float = UNMATCHED_GRACE,
) -> tuple[dict[str, float], frozenset[str]]:
    """``first_seen``: since when each cgroup had no pod object, as last returned. The new
    ``first_seen`` (cgroups matched or gone are forgotten) and those unmatched for at least
    ``grace`` seconds."""
    seen = {uid: first_seen.get(uid, now) for uid in unmatched}
    return seen, frozenset(uid for uid, since in seen.items() if now - since >= grace)


def relist_due(
    unmatched: Collection[str],
    connected: bool,
    last_asked_at: float | None,
    now: float,
    min_interval: float = RELIST_MIN_INTERVAL,
) -> bool:
    """Whether to ask the pod watch for a new list now. Not while it is disconnected: it
    lists anyway once it reconnects. ``last_asked_at``: when the agent last asked (None:
    never)."""
    if not unmatched or not connected:
        return False
    return last_asked_at is None or now - last_asked_at >= min_interval


def pod_view_blind(
    ever_synced: bool,
    connected: bool,
    current_at: float,
    now: float,
    bound: float = BLIND_AFTER_SECONDS,
) -> bool:
    """Whether the pod view cannot be trusted to show this node's pods: never listed, or
    disconnected for longer than ``bound``. ``current_at``: when the view was last seen
    connected (or the agent started, if it never was)."""
    if connected:
        return False
    if not ever_synced:
        return True
    return now - current_at > bound


def is_api_uid(uid: str) -> bool:
    """A UID the API server gave (a UUID); a static pod's is the kubelet's config hash."""
    return _API_UID.match(uid) is not None


def kill_only_protection(cgroup: CgroupPod, self_uid: str | None) -> str | None:
    """Why a pod known only from its cgroup must not be killed, or None if it may."""
    if self_uid is not None and cgroup.uid == self_uid:
        return "the oomguard agent itself"
    if not is_api_uid(cgroup.uid):
        return "a static pod (its UID is a config hash)"
    if cgroup.qos is QosClass.GUARANTEED:
        return "Guaranteed (the kernel spares it too: oom_score_adj -997)"
    return None


def kill_only_candidates(
    cgroups: Iterable[CgroupPod],
    pods: Iterable[PodInfo],
    self_uid: str | None,
    usage: int,
    line: int,
) -> list[Candidate]:
    """Candidates for the pod cgroups no pod object covers, each ``kill_only``; none while
    ``usage`` is below ``line`` (the guarded memory.high)."""
    if usage < line:
        return []
    known = known_uids(pods)
    return [
        Candidate(
            id=cgroup.uid,
            name=f"{KILL_ONLY_PREFIX}{cgroup.path}",
            started_at=cgroup.started_at,
            memory_bytes=cgroup.memory_bytes,
            protected=kill_only_protection(cgroup, self_uid) is not None,
            kill_only=True,
        )
        for cgroup in cgroups
        if cgroup.uid not in known
    ]
