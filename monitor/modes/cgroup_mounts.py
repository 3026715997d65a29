"""Which parts of the host's cgroup tree the node agent can write, read from mountinfo.

The chart mounts the host's cgroup2 tree read-only and only the pods' cgroup (kubepods)
writable on top of it, at the same path. Everything the agent writes in node mode is in
kubepods (its ``memory.high``, the PSI trigger on its ``memory.pressure``, a pod's
``cgroup.kill``), so that is enough; a kubepods on a read-only mount (a chart whose
``agent.cgroupDriver`` names the other driver's cgroup, say) would make every write fail
with EROFS, and is refused at start with the reason instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from oomguard.monitor.kernel.mountinfo import Mount, mount_of, parse_mountinfo

MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class CgroupMounts:
    """The mounts the cgroup root and kubepods are on (None: not found, e.g. no mountinfo)."""

    root: Mount | None
    kubepods: Mount | None

    @property
    def kubepods_read_only(self) -> bool:
        return self.kubepods is not None and self.kubepods.read_only

    def describe(self) -> dict[str, str]:
        """For the start-up log line: each mount point and whether it is read-only."""
        out: dict[str, str] = {}
        for name, mount in (("root", self.root), ("kubepods", self.kubepods)):
            if mount is not None:
                mode = "ro" if mount.read_only else "rw"
                out[f"{name}_mount"] = f"{mount.mount_point} ({mode})"
        return out


def cgroup_mounts(root: Path, kubepods: Path, mountinfo: Path | None = None) -> CgroupMounts:
    """The mounts of ``root`` and ``kubepods``; both None when mountinfo cannot be read."""
    mountinfo = mountinfo or MOUNTINFO
    try:
        mounts = parse_mountinfo(mountinfo.read_bytes(), str(mountinfo))
    except (OSError, ValueError):
        return CgroupMounts(None, None)
    return CgroupMounts(
        mount_of(mounts, Path(os.path.realpath(root))),
        mount_of(mounts, Path(os.path.realpath(kubepods))),
    )


def read_only_kubepods_message(kubepods: Path, mounts: CgroupMounts) -> str:
    where = mounts.kubepods.mount_point if mounts.kubepods is not None else kubepods
    return (
        f"the kubepods cgroup {kubepods} is on a read-only mount ({where}): the agent writes "
        "memory.high and cgroup.kill there. The chart mounts the host's cgroup tree read-only "
        "and only the pods' cgroup writable: agent.cgroupDriver (or agent.kubepodsCgroup) must "
        "name this node's; --dry-run writes nothing and runs anyway"
    )
