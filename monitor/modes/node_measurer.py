"""One look at the node: kubepods' working set, this node's pods (from the watch), their
cgroups and what each holds, as a plain :class:`Measurement` the planner works on.

While the pod view is blind (``kube/pod_view.py``: never listed, or disconnected for long)
and usage is at the guarded line, the pod cgroups no pod object covers become kill-only
candidates, each with its cgroup's time of making and working set."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from oomguard.monitor.decision.candidate import Candidate
from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError, walk_cgroups
from oomguard.monitor.kernel.parse_error import ParseError
from oomguard.monitor.kube.pod_candidates import PodInfo, ProtectionRules, pod_candidates
from oomguard.monitor.kube.pod_cgroups import KubepodsLocation, PodCgroup, parse_pod_cgroups
from oomguard.monitor.kube.pod_view import (
    CgroupPod,
    kill_only_candidates,
    unmatched_cgroups,
)
from oomguard.wire.node_settings import EvictionPolicy


class PodSnapshots(Protocol):
    """What the agent needs from the pod watch."""

    connected: bool
    synced: threading.Event  # set once the pods were listed

    def snapshot(self) -> dict[str, PodInfo]: ...

    def request_relist(self) -> None:
        """List the pods again soon (a pod cgroup on disk has no pod object)."""
        ...


@dataclass(frozen=True)
class Measurement:
    usage: int  # kubepods working set
    pods: dict[str, PodInfo]  # by uid
    cgroups: dict[str, PodCgroup]  # by uid
    candidates: list[Candidate]
    # pods known from their cgroup alone, offered as kill-only candidates (a blind pod view)
    kill_only: dict[str, CgroupPod] = field(default_factory=dict)

    @property
    def alive(self) -> set[str]:
        """The uids still on the node: a pod object or a pod cgroup."""
        return set(self.pods) | set(self.cgroups)

    @property
    def unmatched(self) -> frozenset[str]:
        """Pod cgroups on disk that no pod object matches."""
        return unmatched_cgroups(self.cgroups, self.pods.values())


class NodeMeasurer:
    def __init__(self, cgroup_root: Path, kubepods: KubepodsLocation, pods: PodSnapshots) -> None:
        self.cgroup_root = cgroup_root
        self.location = kubepods
        self.kubepods = Cgroup(cgroup_root / kubepods.path)
        self.pods = pods

    def measure(
        self, rules: ProtectionRules, order: EvictionPolicy, kill_only_line: int | None = None
    ) -> Measurement:
        """``kill_only_line``: the guarded line while the pod view is blind (None: it is
        not); kill-only candidates are offered only at or above it. Raises CgroupError,
        ParseError or OSError when kubepods cannot be read."""
        usage = self.kubepods.working_set()
        pods = self.pods.snapshot()
        dirs = walk_cgroups(self.cgroup_root, self.location.path, depth=3)
        cgroups = parse_pod_cgroups(dirs, self.location)
        memory: dict[str, int] = {}
        for uid, cgroup in cgroups.items():
            try:
                memory[uid] = Cgroup(self.cgroup_root / cgroup.path).working_set()
            except (CgroupError, ParseError):
                memory[uid] = 0  # gone between the walk and the read
        candidates = pod_candidates(pods.values(), memory, rules, order)
        kill_only: dict[str, CgroupPod] = {}
        if kill_only_line is not None and usage >= kill_only_line:
            kill_only = self._cgroup_pods(cgroups, pods, memory)
            candidates += kill_only_candidates(
                kill_only.values(), pods.values(), rules.self_uid, usage, kill_only_line
            )
        return Measurement(usage, pods, cgroups, candidates, kill_only)

    def _cgroup_pods(
        self, cgroups: dict[str, PodCgroup], pods: dict[str, PodInfo], memory: dict[str, int]
    ) -> dict[str, CgroupPod]:
        found = {}
        for uid in unmatched_cgroups(cgroups, pods.values()):
            cgroup = cgroups[uid]
            try:
                made_at = Cgroup(self.cgroup_root / cgroup.path).made_at()
            except CgroupError:
                continue  # gone between the walk and the stat
            found[uid] = CgroupPod(uid, cgroup.qos, str(cgroup.path), made_at, memory[uid])
        return found
