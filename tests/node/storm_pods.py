"""The storm's workload pods and how each one ended, as plain data.

A storm is ``count`` bare pods (restartPolicy Never) in one namespace, each created once the
one before runs (creation order is age order: pod 0 is the oldest), each growing to
``size_mib`` of touched anonymous memory. A pod that has all of it says so with a file
``<name>.full`` in a hostPath directory it shares with the test, then holds its memory until
the test creates ``release`` there, and exits 0. So the storm peaks when every pod is full
or gone, however slow the emulated node is, and the test waits on that, not on a clock.
The pure parts (manifests, classification) are unit-tested on the host.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Runs in the Python base image. ``bytearray(b"\x01") * n`` writes every page (calloc'd or
# mmap'd zero pages would not be charged to the cgroup until touched).
WORKLOAD = """
import os, time
size, step, name = int(os.environ["SIZE_MIB"]), 16, os.environ["POD_NAME"]
held = []
while len(held) * step < size:
    held.append(bytearray(b"\\x01") * (step << 20))
    time.sleep(0.1)
open(f"/storm/{name}.full", "w").close()
print("full", flush=True)
while not os.path.exists("/storm/release") or os.environ.get("HOLD") == "forever":
    time.sleep(0.5)
print("done", flush=True)
"""


PRESSURE_TAINT = "oomguard.io/memory-pressure"
# The storm's one Deployment (issue #11 point 4): its pods do not tolerate the taint, so an
# evicted one's replacement must wait for the node to calm down, not join the same storm.
REPLICATED = "storm-replicated"


class Ending(enum.Enum):
    """How a storm pod ended."""

    COMPLETED = "completed"  # exited 0: its work is kept
    EVICTED = "evicted"  # the agent's Eviction (an OOMGuardEviction Event names it)
    OOM_KILLED = "oom-killed"  # the kernel's OOM killer
    OTHER = "other"  # anything else (failed, deleted by someone else, still running)


@dataclass(frozen=True)
class StormPlan:
    namespace: str
    count: int
    size_mib: int
    image: str
    host_dir: str  # the hostPath shared with the test

    @property
    def release_file(self) -> str:
        return f"{self.host_dir}/release"

    def full_file(self, index: int) -> str:
        return f"{self.host_dir}/{self.name(index)}.full"

    def name(self, index: int) -> str:
        return f"storm-{index:02d}"

    def qualified(self, index: int) -> str:
        """Pod ``index`` as the agent's decisions name pods: "namespace/name"."""
        return f"{self.namespace}/{self.name(index)}"

    def manifest(self, index: int) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name(index),
                "namespace": self.namespace,
                "labels": {"app": "storm", "storm-index": str(index)},
            },
            "spec": {
                "restartPolicy": "Never",
                # the storm stands for work already placed on the node: the pods created
                # after the first eviction must still land here, memory-pressure taint or not
                "tolerations": [
                    {"key": PRESSURE_TAINT, "operator": "Exists", "effect": "NoSchedule"}
                ],
                **self._pod_spec(self.size_mib, [{"name": "POD_NAME", "value": self.name(index)}]),
            },
        }

    def replicated_manifest(self, size_mib: int) -> dict[str, Any]:
        """The storm's Deployment: one replica, scheduled like any workload (no toleration),
        holding ``size_mib`` until deleted; its pods name their ``.full`` file by pod name."""
        labels = {"app": REPLICATED}
        pod_name = {"fieldRef": {"fieldPath": "metadata.name"}}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": REPLICATED, "namespace": self.namespace},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": self._pod_spec(
                        size_mib,
                        [
                            {"name": "POD_NAME", "valueFrom": pod_name},
                            {"name": "HOLD", "value": "forever"},
                        ],
                    ),
                },
            },
        }

    def _pod_spec(self, size_mib: int, env: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "terminationGracePeriodSeconds": 5,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "containers": [
                {
                    "name": "work",
                    "image": self.image,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", WORKLOAD],
                    "env": [{"name": "SIZE_MIB", "value": str(size_mib)}, *env],
                    "volumeMounts": [{"name": "storm", "mountPath": "/storm"}],
                }
            ],
            "volumes": [
                {
                    "name": "storm",
                    "hostPath": {"path": self.host_dir, "type": "DirectoryOrCreate"},
                }
            ],
        }


# Below the line by this much, the storm's next pod cannot set off a decision on its own (the
# agent's buffer is 64 MiB; each pod's Python adds about 10 MiB to its planned size).
REPLICATED_MARGIN_MIB = 256


def replicated_size_mib(line: int, committed: int, size_mib: int) -> int | None:
    """The size of the storm's Deployment pod when it comes next, else None (a bare pod comes
    next). It comes when one more bare pod (``size_mib``) would bring what the storm has
    ``committed`` (kubepods at the start plus every pod's planned size, bytes) within
    ``REPLICATED_MARGIN_MIB`` of the ``line``: then it is sized to pass the line by half a pod,
    so it is the newest pod at the decision its growth sets off, the first victim."""
    mib = 2**20
    if committed + (size_mib + REPLICATED_MARGIN_MIB) * mib < line:
        return None
    return max((line - committed) // mib, 0) + size_mib // 2


def replicated_pod(name: str) -> bool:
    """Is ``name`` a pod of the storm's Deployment (``<deployment>-<hash>-<suffix>``)?"""
    return name.startswith(f"{REPLICATED}-")


def ending(pod: Mapping[str, Any] | None, evicted: bool) -> Ending:
    """``pod`` is the pod's last state (None once deleted); ``evicted``: an OOMGuardEviction
    Event names it."""
    if evicted:
        return Ending.EVICTED
    if pod is None:
        return Ending.OTHER
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated") or {}
        if terminated.get("reason") == "OOMKilled":
            return Ending.OOM_KILLED
    if status.get("phase") == "Succeeded":
        return Ending.COMPLETED
    return Ending.OTHER


def is_final(pod: Mapping[str, Any] | None) -> bool:
    """The pod will not change any more: gone, or Succeeded/Failed."""
    if pod is None:
        return True
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


# How long a pod must have been seen Running before a decision for the test to hold that the
# agent knew of it (its pod watch and cgroup scan lag the apiserver, more so under emulation).
KNOWN_AFTER = 10.0

# One decision line of the agent's text log, as containerd writes it to the pod's log file:
# "<runtime stamp> stderr F <agent stamp> WARNING evicting newest pods ... victims="[...]" ..."
_DECISION = re.compile(
    r"^\S+ \S+ \S+ (?P<stamp>\d{4}-\d\d-\d\dT\S+Z) WARNING evicting newest pods .*?"
    r'victims="(?P<victims>\[.*?\])"'
)


@dataclass(frozen=True)
class Decision:
    """One eviction decision of the agent: when (epoch seconds) and which pods."""

    at: float
    victims: tuple[str, ...]  # "namespace/name"


def parse_decisions(log: str) -> list[Decision]:
    """The agent's ``evicting newest pods`` decisions in a container log, oldest first."""
    found = []
    for line in log.splitlines():
        match = _DECISION.match(line)
        if match:
            at = datetime.fromisoformat(match["stamp"].replace("Z", "+00:00")).timestamp()
            victims = json.loads(match["victims"].replace('\\"', '"'))
            found.append(Decision(at, tuple(victims)))
    return found


def newest_first_violations(
    plan: StormPlan,
    decisions: Sequence[Decision],
    running_since: Sequence[float],
    released_at: float,
) -> list[str]:
    """Decisions that took a storm pod while a newer one had been running for ``KNOWN_AFTER``
    seconds and was neither taken in the same decision nor an earlier one.

    "Newest first" holds at each decision, among the pods alive then: a pod created after an
    episode's first evictions may well outlive older pods evicted before it existed. Only
    decisions before ``released_at`` are judged: after it, pods end on their own, at times
    the test does not know. ``running_since[i]`` is when the test saw pod i Running.
    """
    index = {plan.qualified(i): i for i in range(len(running_since))}
    taken: set[str] = set()
    found = []
    for decision in sorted(decisions, key=lambda d: d.at):
        if decision.at >= released_at:
            break
        in_this = set(decision.victims)
        for victim in decision.victims:
            if victim not in index:
                continue
            for newer_index in range(index[victim] + 1, len(running_since)):
                newer = plan.qualified(newer_index)
                known = running_since[newer_index] <= decision.at - KNOWN_AFTER
                if known and newer not in taken and newer not in in_this:
                    found.append(f"{victim} taken while the newer {newer} was running")
        taken |= in_this
    return found


def evicted_without_a_decision(
    plan: StormPlan, endings: Sequence[Ending], decisions: Sequence[Decision]
) -> list[str]:
    """Evicted storm pods that no logged decision names (the rule above cannot judge them)."""
    decided = {victim for d in decisions for victim in d.victims}
    return [
        plan.name(i)
        for i, e in enumerate(endings)
        if e is Ending.EVICTED and plan.qualified(i) not in decided
    ]
