"""Sidecar mode, finding its place: the pod cgroup, the workload container's cgroup in it,
the pod's limit and the workers' ``memory.high`` (``SidecarPlan``), read from cgroupfs.

A native sidecar (an init container with ``restartPolicy: Always``) starts before the
workload, so ``locate_when_started`` looks again until a workload container holds a
process, and gives up with a clear error after ``--workload-wait`` seconds.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.kernel.cgroupfs import (
    Cgroup,
    CgroupError,
    cgroup_path_of_process,
    walk_cgroups,
)
from oomguard.monitor.kernel.procfs import ProcReader
from oomguard.monitor.modes.sidecar_layout import (
    ContainerCgroup,
    NoWorkloadYet,
    SidecarSetupError,
    pod_cgroup_for_uid,
    pod_cgroup_of_own,
    pod_limit,
    workers_memory_high,
    workload_cgroup,
)
from oomguard.monitor.runtime.stop_signal import StopSignal

log = logging.getLogger("oomguard.sidecar")

LOOK_INTERVAL = 0.2  # seconds between looks for the workload: its workers may fork at once


@dataclass(frozen=True)
class SidecarPlan:
    root: Path
    pod: PurePosixPath
    workload: PurePosixPath
    own: PurePosixPath | None
    limit: int | None  # tightest memory.max from the workload cgroup up to the pod cgroup
    memory_high: int


def _container_cgroups(root: Path, pod: PurePosixPath, reader: ProcReader) -> list[ContainerCgroup]:
    found = []
    for entry in sorted((root / pod).iterdir()):
        if not entry.is_dir():
            continue
        rel = pod / entry.name
        try:
            pids = Cgroup(entry).pids()
        except CgroupError:
            continue
        comms = []
        for pid in pids:
            stat = reader.stat(pid)
            if stat is not None:
                comms.append(stat.comm)
        found.append(ContainerCgroup(rel, tuple(comms), tuple(pids)))
    return found


def _relative(path: str) -> PurePosixPath:
    return PurePosixPath(path.strip("/") or ".")


def locate(args: argparse.Namespace, root: Path, reader: ProcReader) -> SidecarPlan:
    """One look. Raises ``NoWorkloadYet`` when no workload container has a process."""
    own, pod = find_pod(args, root)
    return plan_in_pod(args, root, pod, own, reader)


def find_pod(args: argparse.Namespace, root: Path) -> tuple[PurePosixPath | None, PurePosixPath]:
    """Our own cgroup (None if unknown) and the pod's: found once, as they do not move."""
    try:
        own: PurePosixPath | None = _relative(cgroup_path_of_process("self"))
    except (OSError, CgroupError):
        own = None
    if args.pod_cgroup:
        pod = _relative(args.pod_cgroup)
    elif args.pod_uid:
        pod = pod_cgroup_for_uid(walk_cgroups(root, PurePosixPath("."), depth=4), args.pod_uid)
    elif own is not None:
        pod = pod_cgroup_of_own(own)
    else:
        raise SidecarSetupError("no /proc/self/cgroup: give --pod-cgroup or POD_UID")
    if not (root / pod).is_dir():
        raise SidecarSetupError(f"the pod cgroup {root / pod} does not exist")
    return own, pod


def plan_in_pod(
    args: argparse.Namespace,
    root: Path,
    pod: PurePosixPath,
    own: PurePosixPath | None,
    reader: ProcReader,
) -> SidecarPlan:
    """The workload container in ``pod``, its limit and the memory.high its container gets."""
    if args.workload_cgroup:
        workload = _relative(args.workload_cgroup)
    else:
        own_container = own if own is not None and own.parent == pod else None
        # in a private cgroup namespace our path is only "/": our PID tells our container
        workload = workload_cgroup(
            _container_cgroups(root, pod, reader), own_container, own_pid=os.getpid()
        )
    limits: dict[PurePosixPath, int | None] = {}
    for path in (workload, *workload.parents):
        limits[path] = Cgroup(root / path).memory_max().bytes
        if path == pod:
            break
    limit = pod_limit(limits)
    explicit: int | None = args.memory_high
    reserve: int | None = args.reserve
    high = workers_memory_high(limit, reserve, explicit)
    return SidecarPlan(root, pod, workload, own, limit, high)


def locate_when_started(
    look: Callable[[], SidecarPlan],
    stop: StopSignal,
    wait_seconds: float,
    interval: float = LOOK_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
) -> SidecarPlan | None:
    """``look`` until the workload has started: the plan, or None if stopped meanwhile.

    Only "no workload yet" is waited out; any other setup error (two workloads, no limit)
    is raised at once, as waiting would not change it."""
    deadline = clock() + wait_seconds
    logged = False
    while True:
        try:
            return look()
        except NoWorkloadYet as exc:
            if clock() >= deadline:
                raise NoWorkloadYet(
                    f"no workload container started within {wait_seconds:g} s "
                    f"(--workload-wait): {exc}"
                ) from exc
            if not logged:
                log_event(log, logging.INFO, "waiting for the workload container to start")
                logged = True
        if stop.wait(interval):
            return None
