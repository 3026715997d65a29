"""Sidecar mode, finding its place: the pod cgroup, the workload container's cgroup in it,
the pod's limit and the workers' ``memory.high`` (``SidecarPlan``), read from cgroupfs.

A native sidecar (an init container with ``restartPolicy: Always``) starts before the
workload, so ``locate_when_started`` looks again until a workload container holds a
process, and gives up with a clear error after ``--workload-wait`` seconds.

A container holds a process before it has its limit: the runtime puts its first process
in the new cgroup and writes ``memory.max`` after (runc: ``Apply``, then ``Set``, before the
process execs the workload). A look in between sees the container unlimited and would draw
the line from the pod's limit, which includes the sidecar's own: on the real node that put
the line 4 MiB under the app's limit, and the pool was OOM-killed. So a limited pod whose
workload container has no limit yet is waited out too (``LimitPending``), for up to
``LIMIT_SETTLE_SECONDS``; after that the pod's limit is taken as it is (a pod with a
pod-level limit only).
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
LIMIT_SETTLE_SECONDS = 10.0  # how long a workload container may have no limit of its own


@dataclass(frozen=True)
class SidecarPlan:
    root: Path
    pod: PurePosixPath
    workload: PurePosixPath
    own: PurePosixPath | None
    limit: int | None  # tightest memory.max from the workload cgroup up to the pod cgroup
    memory_high: int


class LimitPending(NoWorkloadYet):
    """The workload container has a process but no ``memory.max`` while its pod has one:
    its runtime has not written the container's limits yet. ``plan`` is what the pod's
    limit alone would give."""

    def __init__(self, plan: SidecarPlan) -> None:
        super().__init__(
            f"the workload container {plan.workload} has no memory limit yet "
            f"(the pod's is {plan.limit}): waiting for its runtime to write it"
        )
        self.plan = plan


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
    plan = SidecarPlan(root, pod, workload, own, limit, high)
    if explicit is None and limit is not None and limits[workload] is None:
        raise LimitPending(plan)
    return plan


def locate_when_started(
    look: Callable[[], SidecarPlan],
    stop: StopSignal,
    wait_seconds: float,
    interval: float = LOOK_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
    settle_seconds: float = LIMIT_SETTLE_SECONDS,
) -> SidecarPlan | None:
    """``look`` until the workload has started: the plan, or None if stopped meanwhile.

    Only "no workload yet" is waited out; any other setup error (two workloads, no limit)
    is raised at once, as waiting would not change it. A container without its own limit
    is waited for up to ``settle_seconds`` from the first look that saw it so; then the
    pod's limit is used (see the module doc)."""
    deadline = clock() + wait_seconds
    logged = False
    pending_since: float | None = None
    while True:
        try:
            return look()
        except LimitPending as exc:
            pending_since = clock() if pending_since is None else pending_since
            if clock() - pending_since >= settle_seconds:
                log_event(
                    log,
                    logging.WARNING,
                    "the workload container has no memory limit of its own: "
                    "its line comes from the pod's limit",
                    workload=str(exc.plan.workload),
                    pod_limit=exc.plan.limit,
                )
                return exc.plan
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
