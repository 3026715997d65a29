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


def _unescape(field: bytes) -> str:
    return os.fsdecode(_OCTAL.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]), field))


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
