"""``/proc/self/mountinfo``: where cgroup2 is mounted (pure parser; reading is in cgroupfs).

Line format (proc(5))::

    36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue

Optional fields end at a lone ``-``. Paths escape space, tab, newline and backslash
as ``\\ooo`` octal; other bytes are raw, so paths are decoded with the filesystem
encoding (``os.fsdecode``) rather than as strict UTF-8.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from oomguard.monitor.kernel.parse_error import ParseError

_OCTAL = re.compile(rb"\\([0-7]{3})")


class MountinfoParseError(ParseError):
    """A mountinfo line does not have the documented fields."""


@dataclass(frozen=True)
class Mount:
    root: str  # path inside the filesystem that is mounted here
    mount_point: Path
    fs_type: str
    source: str
    super_options: tuple[str, ...]
    options: tuple[str, ...] = ()  # per-mount: a read-only bind of a writable fs says "ro"
    mount_id: int = 0
    parent_id: int = 0

    @property
    def read_only(self) -> bool:
        return "ro" in self.options or "ro" in self.super_options


def _unescape(field: bytes) -> str:
    return os.fsdecode(_OCTAL.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]), field))


def _number(field: bytes, source: str, line: int) -> int:
    if not field.isdigit():
        raise MountinfoParseError(source, f"mount id {field!r} is not a number", line)
    return int(field)


def parse_mountinfo(data: bytes, source: str = "/proc/self/mountinfo") -> list[Mount]:
    mounts: list[Mount] = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw:
            continue
        fields = raw.split(b" ")
        try:
            separator = fields.index(b"-", 6)
        except ValueError:
            raise MountinfoParseError(source, "no ' - ' separator after field 6", number) from None
        if len(fields) < separator + 4:
            raise MountinfoParseError(source, "fewer than 3 fields after ' - '", number)
        mounts.append(
            Mount(
                root=_unescape(fields[3]),
                mount_point=Path(_unescape(fields[4])),
                fs_type=_unescape(fields[separator + 1]),
                source=_unescape(fields[separator + 2]),
                super_options=tuple(_unescape(fields[separator + 3]).split(",")),
                options=tuple(_unescape(fields[5]).split(",")),
                mount_id=_number(fields[0], source, number),
                parent_id=_number(fields[1], source, number),
            )
        )
    return mounts


def cgroup2_mount_point(mounts: list[Mount]) -> Path | None:
    """The first cgroup2 mount of the whole hierarchy (root ``/``), or None.

    Hybrid hosts mount cgroup2 at /sys/fs/cgroup/unified; pure v2 hosts at
    /sys/fs/cgroup. A bind mount of a sub-tree (root other than ``/``) would map
    paths wrongly, so it is skipped.
    """
    for mount in mounts:
        if mount.fs_type == "cgroup2" and mount.root == "/":
            return mount.mount_point
    return None


def mount_of(mounts: list[Mount], path: Path) -> Mount | None:
    """The mount that ``path`` (absolute, symlinks resolved) is reached through, or None.

    Walks the path from ``/`` as the kernel does: at each prefix, a mount whose mount point it
    is and whose parent is the mount reached so far takes over, repeatedly, since a mount
    stacked on another has that one as its parent. A mount hidden by another stacked on its
    parent's mount point is never reached.

    The chart mounts the host's cgroup2 tree read-only and the pods' cgroup writable on top
    of it, at the same path: two mounts of one cgroup2 filesystem, and this tells which one a
    cgroup's files are written through.
    """
    listed = {m.mount_id for m in mounts}
    current: Mount | None = None
    for prefix in [*reversed(path.parents), path]:
        here = [m for m in mounts if m.mount_point == prefix]
        # the first at this point: on the mount reached so far, or, in a namespace that does
        # not list that mount (a container's root's parent), the last one listed
        chained = [m for m in here if current is not None and m.parent_id == current.mount_id]
        first = chained or [m for m in here if current is None or m.parent_id not in listed]
        if not first:
            continue
        current = first[-1]
        for _ in here:  # bounded: a parent loop in a corrupt table must not hang the agent
            stacked = [m for m in here if m.parent_id == current.mount_id and m is not current]
            if not stacked:
                break
            current = stacked[-1]
    return current
