"""Sidecar mode, the pure part: which cgroup is the pod's, which is the workload's, which
processes are workers, and the memory.high the workers get.

All paths are relative to the cgroup2 mount. The pod cgroup is found from (in this order) an
explicit path, the pod's UID (the kubelet names pod cgroups after it), or the sidecar's own
cgroup (a container cgroup's parent is its pod). The workload cgroup is the one container
cgroup of the pod, other than the sidecar's own and the sandbox's ``pause``, that holds
processes. The sidecar's own is told by its path when ``/proc/self/cgroup`` shows it, and by
its PID in ``cgroup.procs`` when a private cgroup namespace (containerd's default) shows only
``/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from oomguard.monitor.kube.pod_cgroups import uid_to_systemd

MIB = 2**20
DEFAULT_RESERVE_MIN = 64 * MIB
DEFAULT_RESERVE_PERCENT = 10

_UID = r"[0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12}"
_POD_NAME = re.compile(rf"(?:^|-)pod{_UID}(?:\.slice)?$")

# Layout the sidecar creates in the workload cgroup (no-internal-process rule: the workload
# cgroup itself keeps no process once memory is enabled for its children).
MAIN_LEAF = "oomguard-main"
WORKERS_LEAF = "oomguard-workers"


class SidecarSetupError(RuntimeError):
    """The sidecar cannot find or arrange its pod's cgroups; the message says what to set."""


class NoWorkloadYet(SidecarSetupError):
    """No container of the pod but ours and the sandbox holds a process: the workload has
    not started yet (a native sidecar starts before it) or has already ended."""


def is_pod_cgroup(path: PurePosixPath) -> bool:
    return bool(_POD_NAME.search(path.name))


def pod_cgroup_of_own(own: PurePosixPath) -> PurePosixPath:
    """The pod cgroup above the sidecar's own cgroup (``/proc/self/cgroup``)."""
    for candidate in (own, *own.parents):
        if is_pod_cgroup(candidate):
            return candidate
    raise SidecarSetupError(
        f"cannot tell the pod's cgroup from our own ({own}): in a cgroup namespace the path is "
        "only '/'. Set POD_UID (downward API: metadata.uid) or --pod-cgroup"
    )


def pod_cgroup_for_uid(dirs: Iterable[PurePosixPath], uid: str) -> PurePosixPath:
    """The directory named after pod ``uid`` (either driver, any QoS class)."""
    names = {f"pod{uid}", f"pod{uid_to_systemd(uid)}"}
    found = [
        d
        for d in dirs
        if is_pod_cgroup(d) and any(d.name.removesuffix(".slice").endswith(n) for n in names)
    ]
    if len(found) != 1:
        raise SidecarSetupError(
            f"expected one cgroup for pod {uid}, found {len(found)}"
            + (f": {', '.join(map(str, found))}" if found else "")
        )
    return found[0]


SANDBOX_PID = 1  # in a pod's shared PID namespace: the sandbox (pause) process


@dataclass(frozen=True)
class ContainerCgroup:
    path: PurePosixPath
    commands: tuple[str, ...]  # the comm of each process in it (directly)
    pids: tuple[int, ...] = ()  # as our PID namespace numbers them (cgroup.procs)


def workload_cgroup(
    containers: Sequence[ContainerCgroup], own: PurePosixPath | None, own_pid: int | None = None
) -> PurePosixPath:
    """The one container cgroup (not ours, not the sandbox's pause) that has processes.

    Ours is ``own`` when the path is known, else the one holding ``own_pid``. In the shared
    PID namespace sidecar mode needs, PID 1 is the sandbox's process whatever its name, so
    the container holding PID 1 is never the workload.
    """
    busy = [
        c
        for c in containers
        if c.path != own
        and (own_pid is None or own_pid not in c.pids)
        and SANDBOX_PID not in c.pids
        and c.commands
        and not all(comm == "pause" for comm in c.commands)
        and c.path.name not in (MAIN_LEAF, WORKERS_LEAF)
    ]
    if not busy:
        raise NoWorkloadYet(
            "expected one workload container cgroup with processes, found none; "
            "give --workload-cgroup"
        )
    if len(busy) != 1:
        listed = ", ".join(f"{c.path} ({' '.join(c.commands[:3])})" for c in busy)
        raise SidecarSetupError(
            f"expected one workload container cgroup with processes, found {listed}; "
            "give --workload-cgroup"
        )
    return busy[0].path


@dataclass(frozen=True)
class ProcessFacts:
    pid: int
    started_at: float
    cmdline: str


@dataclass(frozen=True)
class WorkerSelector:
    """Which processes are workers: a command-line pattern, or everything but the main one.

    The main process is ``main_pid`` when given, else the oldest process of the workload
    cgroup when the sidecar starts (the container's entry point)."""

    pattern: re.Pattern[str] | None = None
    main_pid: int | None = None

    def choose_main(self, processes: Sequence[ProcessFacts]) -> int | None:
        if self.main_pid is not None:
            return self.main_pid
        if not processes:
            return None
        return min(processes, key=lambda p: (p.started_at, p.pid)).pid

    def is_worker(self, process: ProcessFacts, main_pid: int | None) -> bool:
        if process.pid == main_pid:
            return False
        if self.pattern is not None:
            return self.pattern.search(process.cmdline) is not None
        return True


def pod_limit(limits: Mapping[PurePosixPath, int | None]) -> int | None:
    """The tightest bounded memory.max among the workload cgroup and its pod ancestors."""
    bounded = [value for value in limits.values() if value is not None]
    return min(bounded) if bounded else None


def default_reserve(limit: int) -> int:
    return max(DEFAULT_RESERVE_MIN, limit * DEFAULT_RESERVE_PERCENT // 100)


def workers_memory_high(limit: int | None, reserve: int | None, explicit: int | None) -> int:
    """memory.high of the workload container: pod limit minus the reserve (what the main
    process, the sidecar and the kernel's slack keep), or ``explicit``."""
    if explicit is not None:
        if limit is not None and explicit >= limit:
            raise SidecarSetupError(
                f"--memory-high {explicit} is not below the pod's memory limit {limit}"
            )
        return explicit
    if limit is None:
        raise SidecarSetupError(
            "the pod has no memory limit (memory.max is 'max' up to the pod cgroup): "
            "set resources.limits.memory on the workload, or give --memory-high"
        )
    reserve = default_reserve(limit) if reserve is None else reserve
    high = limit - reserve
    if high <= 0:
        raise SidecarSetupError(f"reserve {reserve} leaves nothing of the pod limit {limit}")
    return high
