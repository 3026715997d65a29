"""`oomguard --version`: what runs, from which commit, on which kernel and cgroup mode.

The version alone does not explain a node's behaviour in a bug report: the kernel release
and the cgroup mode (v1, hybrid or v2) decide whether oomguard can act at all.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import oomguard
from oomguard.monitor.kernel.mountinfo import (
    Mount,
    MountinfoParseError,
    cgroup2_mount_point,
    parse_mountinfo,
)

# Set by the image build (Dockerfile ARG GIT_COMMIT); a checkout asks git instead.
COMMIT_ENV = "OOMGUARD_GIT_COMMIT"
MOUNTINFO = Path("/proc/self/mountinfo")
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class CgroupMode:
    mode: str  # "v2", "hybrid", "v1" or "unknown"
    detail: str

    def __str__(self) -> str:
        return f"{self.mode} ({self.detail})"


def cgroup_mode_of_mounts(mounts: list[Mount]) -> CgroupMode:
    """The mode from the mount table: which of cgroup (v1) and cgroup2 are mounted."""
    v1 = [m for m in mounts if m.fs_type == "cgroup"]
    v2 = cgroup2_mount_point(mounts)
    memory_on_v1 = any("memory" in m.super_options for m in v1)
    if v2 is not None and not v1:
        return CgroupMode("v2", f"cgroup2 at {v2}")
    if v2 is not None:
        # oomguard needs the memory controller on cgroup2; hybrid hosts keep it on v1.
        where = "v1" if memory_on_v1 else "cgroup2"
        return CgroupMode("hybrid", f"cgroup2 at {v2}, memory controller on {where}")
    if v1:
        return CgroupMode("v1", "no cgroup2 mount")
    return CgroupMode("unknown", "no cgroup filesystem mounted")


def cgroup_mode_of_sysfs(root: Path = CGROUP_ROOT) -> CgroupMode:
    """The mode from what /sys/fs/cgroup holds, when the mount table cannot be read."""
    if (root / "cgroup.controllers").exists():
        return CgroupMode("v2", f"cgroup2 at {root}, from its files")
    if (root / "unified" / "cgroup.controllers").exists():
        return CgroupMode("hybrid", f"cgroup2 at {root / 'unified'}, from its files")
    if (root / "memory").is_dir():
        return CgroupMode("v1", f"{root / 'memory'} is a v1 hierarchy, from its files")
    return CgroupMode("unknown", f"neither {MOUNTINFO} nor {root} tells")


def detect_cgroup_mode(mountinfo: Path = MOUNTINFO, root: Path = CGROUP_ROOT) -> CgroupMode:
    try:
        mode = cgroup_mode_of_mounts(parse_mountinfo(mountinfo.read_bytes(), str(mountinfo)))
    except (OSError, MountinfoParseError):
        return cgroup_mode_of_sysfs(root)
    return mode if mode.mode != "unknown" else cgroup_mode_of_sysfs(root)


def git_commit(checkout: Path | None = None) -> str | None:
    """The commit this code was built from, if anything knows it."""
    if commit := os.environ.get(COMMIT_ENV, "").strip():
        return commit
    # An editable install runs from the repository: src/oomguard/ -> its root.
    root = checkout or Path(oomguard.__file__).resolve().parents[2]
    if not ((root / ".git").exists() and (root / "pyproject.toml").is_file()):
        return None
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def version_report() -> str:
    rows = [
        ("commit", git_commit() or "unknown"),
        ("kernel", os.uname().release),
        ("cgroup", str(detect_cgroup_mode())),
    ]
    return "\n".join([f"oomguard {oomguard.__version__}", *(f"{k:<8}{v}" for k, v in rows)])
