"""The memory.high the node agent puts on the kubepods cgroup.

``node memory - reserve``, never above ``kubepods memory.max - margin``: the kubelet sets
memory.max to node allocatable, and memory.high must throttle *before* that hard limit, or the
kernel OOM killer fires inside kubepods first. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MARGIN_BYTES = 64 * 2**20


@dataclass(frozen=True)
class KubepodsHigh:
    bytes: int
    capped_by_max: bool  # True when kubepods memory.max - margin was lower than memory - reserve

    def explain(self) -> str:
        return (
            "capped at kubepods memory.max - margin"
            if self.capped_by_max
            else ("node memory - reserve")
        )


def kubepods_high(
    node_memory_bytes: int,
    reserve_bytes: int,
    kubepods_max_bytes: int | None,
    margin_bytes: int = DEFAULT_MARGIN_BYTES,
) -> KubepodsHigh:
    """``kubepods_max_bytes`` None means memory.max is ``max`` (no cap)."""
    if node_memory_bytes <= 0:
        raise ValueError(f"node memory must be positive, got {node_memory_bytes}")
    if reserve_bytes < 0 or margin_bytes < 0:
        raise ValueError("reserve and margin must not be negative")
    wanted = node_memory_bytes - reserve_bytes
    if wanted <= 0:
        raise ValueError(
            f"reserve {reserve_bytes} leaves nothing of {node_memory_bytes} bytes for pods"
        )
    if kubepods_max_bytes is not None:
        cap = kubepods_max_bytes - margin_bytes
        if cap <= 0:
            raise ValueError(f"kubepods memory.max {kubepods_max_bytes} is below the margin")
        if cap < wanted:
            return KubepodsHigh(cap, True)
    return KubepodsHigh(wanted, False)
