"""One look at the node: kubepods' working set, this node's pods (from the watch), their
cgroups and what each holds, as a plain :class:`Measurement` the planner works on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from oomguard.monitor.decision.candidate import Candidate
from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError, walk_cgroups
from oomguard.monitor.kernel.parse_error import ParseError
from oomguard.monitor.kube.pod_candidates import PodInfo, ProtectionRules, pod_candidates
from oomguard.monitor.kube.pod_cgroups import KubepodsLocation, PodCgroup, parse_pod_cgroups
from oomguard.wire.node_settings import EvictionPolicy


class PodSnapshots(Protocol):
    """What the agent needs from the pod watch."""

    connected: bool

    def snapshot(self) -> dict[str, PodInfo]: ...


@dataclass(frozen=True)
class Measurement:
    usage: int  # kubepods working set
    pods: dict[str, PodInfo]  # by uid
    cgroups: dict[str, PodCgroup]  # by uid
    candidates: list[Candidate]

    @property
    def alive(self) -> set[str]:
        """The uids still on the node: a pod object or a pod cgroup."""
        return set(self.pods) | set(self.cgroups)


class NodeMeasurer:
    def __init__(self, cgroup_root: Path, kubepods: KubepodsLocation, pods: PodSnapshots) -> None:
        self.cgroup_root = cgroup_root
        self.location = kubepods
        self.kubepods = Cgroup(cgroup_root / kubepods.path)
        self.pods = pods

    def measure(self, rules: ProtectionRules, order: EvictionPolicy) -> Measurement:
        """Raises CgroupError, ParseError or OSError when kubepods cannot be read."""
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
        return Measurement(usage, pods, cgroups, candidates)
