"""Which kernel we run on, for the one decision that depends on it: may memory.high be set.

Kernels older than 5.9 can livelock an allocator that sits over memory.high, so neither the
guard nor the node agent sets it there.
"""

from __future__ import annotations

import os
import re

MIN_MEMORY_HIGH_KERNEL = (5, 9)


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """``6.1.0-18-amd64`` -> (6, 1) (default: this machine's release); ``ValueError`` when
    the release does not start with major.minor."""
    release = os.uname().release if release is None else release
    match = re.match(r"(\d+)\.(\d+)", release)
    if match is None:
        raise ValueError(f"cannot read a kernel version from {release!r}")
    return int(match[1]), int(match[2])


def memory_high_is_safe(release: str | None = None) -> bool:
    """Whether memory.high may be set on this release (default: this machine's)."""
    return kernel_version(release) >= MIN_MEMORY_HIGH_KERNEL
