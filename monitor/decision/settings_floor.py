"""Whether settings are safe to enforce: the agent's own check, independent of the CRD's
bounds and of the operator. Pure.

Settings are refused when the kubepods ``memory.high`` cannot be worked out (node memory
unknown or 0, a reserve at or above node memory, kubepods ``memory.max`` below the margin),
or when the line evictions drive usage down to, ``memory.high x usagePercent - buffer``,
would leave pods less than ``MIN_POD_SHARE_PERCENT`` of node memory. A policy that asks for
less leaves the node to the last good settings rather than draining it in one step.
"""

from __future__ import annotations

from oomguard.monitor.decision.kubepods_high import kubepods_high

MIN_POD_SHARE_PERCENT = 50
"""Pods keep at least this share of node memory: the envelope's reserve.percent maximum."""


def unsafe_settings(
    node_memory_bytes: int,
    reserve_bytes: int,
    kubepods_max_bytes: int | None,
    margin_bytes: int,
    usage_percent: float,
    buffer_bytes: int,
) -> str | None:
    """Why these settings must not be enforced, or None when they are safe."""
    try:
        high = kubepods_high(node_memory_bytes, reserve_bytes, kubepods_max_bytes, margin_bytes)
    except ValueError as exc:
        return f"memory.high cannot be worked out: {exc}"
    left = int(high.bytes * usage_percent / 100) - buffer_bytes
    floor = node_memory_bytes * MIN_POD_SHARE_PERCENT // 100
    if left < floor:
        return (
            f"pods would be left {left} bytes (memory.high {high.bytes} x {usage_percent:g}% "
            f"- buffer {buffer_bytes}), below the floor of {floor} bytes "
            f"({MIN_POD_SHARE_PERCENT}% of node memory {node_memory_bytes})"
        )
    return None
