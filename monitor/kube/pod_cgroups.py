"""Where the kubelet puts a pod's cgroup, and the reverse: which pod a cgroup directory belongs to.

Pure: paths are relative to the cgroup2 mount; the caller lists directories. Both kubelet cgroup
drivers are covered:

- systemd: ``kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice`` (dashes
  of the UID become underscores), Guaranteed pods directly under ``kubepods.slice`` as
  ``kubepods-pod<uid_>.slice``; containers are ``cri-containerd-<id>.scope``, ``crio-<id>.scope``
  or ``docker-<id>.scope`` below that. A custom kubelet cgroup root such as kind's
  ``kubelet.slice/kubelet-kubepods.slice`` follows the same slice naming, so the names are
  derived from the kubepods slice rather than hard-coded.
- cgroupfs: ``kubepods/burstable/pod<uid>``, ``kubepods/besteffort/pod<uid>``, Guaranteed as
  ``kubepods/pod<uid>``; containers are directories named by their id (``crio-<id>`` for CRI-O).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import PurePosixPath


class CgroupDriver(Enum):
    SYSTEMD = "systemd"
    CGROUPFS = "cgroupfs"


class QosClass(Enum):
    GUARANTEED = "Guaranteed"
    BURSTABLE = "Burstable"
    BEST_EFFORT = "BestEffort"


DEFAULT_KUBEPODS: dict[CgroupDriver, PurePosixPath] = {
    CgroupDriver.SYSTEMD: PurePosixPath("kubepods.slice"),
    CgroupDriver.CGROUPFS: PurePosixPath("kubepods"),
}

# QoS class -> the name of its sub-cgroup (Guaranteed pods have none)
_QOS_DIR: dict[QosClass, str | None] = {
    QosClass.GUARANTEED: None,
    QosClass.BURSTABLE: "burstable",
    QosClass.BEST_EFFORT: "besteffort",
}
_QOS_BY_DIR: dict[str, QosClass] = {
    "burstable": QosClass.BURSTABLE,
    "besteffort": QosClass.BEST_EFFORT,
}

# Container scopes of the runtimes we know, systemd driver. crio-conmon-* is CRI-O's monitor
# process, not a container, so it is left out of the container list (but it is in the pod).
_SYSTEMD_CONTAINER = re.compile(r"^(?:cri-containerd|crio|docker)-(?P<id>[0-9a-zA-Z]+)\.scope$")
_CGROUPFS_CONTAINER = re.compile(r"^(?:crio-|docker-)?(?P<id>[0-9a-zA-Z]+)$")
_CONMON = re.compile(r"^crio-conmon-")

# A pod UID: a UUID for API pods, a hex config hash for static pods.
_UID = r"[0-9a-fA-F][0-9a-fA-F_-]*"
_CGROUPFS_POD = re.compile(rf"^pod(?P<uid>{_UID})$")


class UnknownDriverError(ValueError):
    """No kubepods cgroup (or two of them) at the cgroup root: the caller must say which to use."""


@dataclass(frozen=True)
class KubepodsLocation:
    driver: CgroupDriver
    path: PurePosixPath  # relative to the cgroup2 mount, e.g. kubepods.slice


@dataclass(frozen=True)
class PodCgroup:
    uid: str  # as the API server spells it (dashes)
    qos: QosClass
    path: PurePosixPath  # relative to the cgroup2 mount
    container_ids: tuple[str, ...] = ()


def slice_stem(slice_name: str) -> str:
    """``kubepods-burstable.slice`` -> ``kubepods-burstable`` (systemd nests names by dashes)."""
    return slice_name.removesuffix(".slice")


def detect_driver(root_entries: Collection[str]) -> CgroupDriver:
    """Pick the driver from the names found at the cgroup root (or under a custom parent)."""
    found = [d for d, p in DEFAULT_KUBEPODS.items() if p.name in root_entries]
    if len(found) == 1:
        return found[0]
    if not found:
        raise UnknownDriverError(
            "neither kubepods.slice (systemd driver) nor kubepods (cgroupfs driver) exists at "
            "the cgroup root; is this a Kubernetes node? Set --kubepods-cgroup and --cgroup-driver."
        )
    raise UnknownDriverError(
        "both kubepods.slice and kubepods exist at the cgroup root; set --cgroup-driver"
    )


def driver_of_path(kubepods: PurePosixPath) -> CgroupDriver:
    """An explicit kubepods path names its driver: systemd slices end in ``.slice``."""
    return CgroupDriver.SYSTEMD if kubepods.name.endswith(".slice") else CgroupDriver.CGROUPFS


def uid_to_systemd(uid: str) -> str:
    return uid.replace("-", "_")


def uid_from_systemd(escaped: str) -> str:
    return escaped.replace("_", "-")


def qos_cgroup_path(qos: QosClass, location: KubepodsLocation) -> PurePosixPath:
    """The parent cgroup of every pod of this QoS class."""
    qos_dir = _QOS_DIR[qos]
    if qos_dir is None:
        return location.path
    if location.driver is CgroupDriver.SYSTEMD:
        return location.path / f"{slice_stem(location.path.name)}-{qos_dir}.slice"
    return location.path / qos_dir


def pod_cgroup_path(uid: str, qos: QosClass, location: KubepodsLocation) -> PurePosixPath:
    """Where the kubelet puts the cgroup of pod ``uid`` of class ``qos``."""
    parent = qos_cgroup_path(qos, location)
    if location.driver is CgroupDriver.SYSTEMD:
        return parent / f"{slice_stem(parent.name)}-pod{uid_to_systemd(uid)}.slice"
    return parent / f"pod{uid}"


def _systemd_pod_uid(name: str, parent: PurePosixPath) -> str | None:
    prefix = f"{slice_stem(parent.name)}-pod"
    if not (name.startswith(prefix) and name.endswith(".slice")):
        return None
    escaped = name[len(prefix) : -len(".slice")]
    if not re.fullmatch(_UID, escaped):
        return None
    return uid_from_systemd(escaped)


def _pod_uid(name: str, parent: PurePosixPath, driver: CgroupDriver) -> str | None:
    if driver is CgroupDriver.SYSTEMD:
        return _systemd_pod_uid(name, parent)
    match = _CGROUPFS_POD.match(name)
    return match["uid"] if match else None


def _container_id(name: str, driver: CgroupDriver) -> str | None:
    if _CONMON.match(name):
        return None
    pattern = _SYSTEMD_CONTAINER if driver is CgroupDriver.SYSTEMD else _CGROUPFS_CONTAINER
    match = pattern.match(name)
    return match["id"] if match else None


def _qos_of_parent(parent: PurePosixPath, location: KubepodsLocation) -> QosClass | None:
    for qos in QosClass:
        if qos_cgroup_path(qos, location) == parent:
            return qos
    return None


def parse_pod_cgroups(
    directories: Iterable[PurePosixPath], location: KubepodsLocation
) -> dict[str, PodCgroup]:
    """Pod UID -> its cgroup, from a listing of directories under the kubepods cgroup.

    ``directories`` are paths relative to the cgroup2 mount, in any order (e.g. a walk of
    kubepods three levels deep). Directories that are not pods (the QoS slices themselves,
    anything else a runtime creates) are ignored; container ids are collected from the pod's
    direct children.
    """
    directories = list(directories)
    pods: dict[PurePosixPath, tuple[str, QosClass]] = {}
    for path in directories:
        qos = _qos_of_parent(path.parent, location)
        if qos is None:
            continue
        uid = _pod_uid(path.name, path.parent, location.driver)
        if uid is not None:
            pods[path] = (uid, qos)
    containers: dict[PurePosixPath, list[str]] = {path: [] for path in pods}
    for path in directories:
        if path.parent in containers:
            container = _container_id(path.name, location.driver)
            if container is not None:
                containers[path.parent].append(container)
    return {
        uid: PodCgroup(uid=uid, qos=qos, path=path, container_ids=tuple(sorted(containers[path])))
        for path, (uid, qos) in pods.items()
    }
