"""When to fall back from evictions to ``cgroup.kill``, and on which pods. Pure.

The last resort fires only when all of these hold:
- the kill fallback is enabled;
- usage is still above the target;
- nothing evictable is left (every remaining candidate is protected, dying, blocked by a
  PodDisruptionBudget, or the API server cannot be reached);
- a pod we already chose (evicted, blocked or unreachable) has waited at least ``wait``
  seconds since we chose it and still holds memory.
Then the newest such pods are killed, as few as cover ``usage - target + buffer``.

Stuck victims come before all of that (:func:`stuck_kill`): a pod whose eviction was
accepted and that still holds memory after the in-flight timeout (grace period plus the
fallback wait) is killed before any new pod is chosen, evictable pods left or not, so one
pod that never dies does not cost the node every other pod.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from oomguard.monitor.decision.amount_to_free import amount_to_free, first_covering
from oomguard.monitor.decision.candidate import Candidate, newest_first_key


@dataclass(frozen=True)
class FallbackDecision:
    victims: tuple[Candidate, ...]
    reason: str


def kill_fallback(
    now: float,
    usage: int,
    target: int,
    buffer: int,
    wait_seconds: float,
    chosen_at: Mapping[str, float],
    candidates: Sequence[Candidate],
    evictable_left: bool,
    enabled: bool = True,
) -> FallbackDecision:
    """``chosen_at``: candidate id -> when it was chosen; ``candidates``: the current pool."""
    if not enabled:
        return FallbackDecision((), "kill fallback disabled")
    if usage <= target:
        return FallbackDecision((), f"usage {usage} within target {target}")
    if evictable_left:
        return FallbackDecision((), "evictable pods are left: evictions go first")
    ready = [
        c
        for c in candidates
        if c.id in chosen_at and now - chosen_at[c.id] >= wait_seconds and c.memory_bytes > 0
    ]
    if not ready:
        return FallbackDecision((), f"no chosen pod has waited {wait_seconds}s yet")
    ready.sort(key=newest_first_key)
    amount = amount_to_free(usage, target, buffer)
    victims, covered = first_covering(ready, amount)
    return FallbackDecision(
        tuple(victims),
        f"usage {usage} still above target {target} after {wait_seconds}s and nothing evictable "
        f"left: killing {len(victims)} pod cgroup(s) holding {covered} bytes",
    )


def stuck_kill(
    now: float,
    usage: int,
    target: int,
    buffer: int,
    timeout: float,
    evicted_at: Mapping[str, float],
    candidates: Sequence[Candidate],
    enabled: bool = True,
) -> FallbackDecision:
    """``evicted_at``: candidate id -> when its eviction was accepted. The newest stuck
    victims that cover ``usage - target + buffer``, or none."""
    if not enabled or usage <= target:
        return FallbackDecision((), "no stuck victim to kill")
    stuck = [
        c
        for c in candidates
        if c.id in evicted_at and now - evicted_at[c.id] >= timeout and c.memory_bytes > 0
    ]
    if not stuck:
        return FallbackDecision((), f"no evicted pod still alive after {timeout}s")
    stuck.sort(key=newest_first_key)
    victims, covered = first_covering(stuck, amount_to_free(usage, target, buffer))
    return FallbackDecision(
        tuple(victims),
        f"usage {usage} above target {target} and {len(stuck)} evicted pod(s) still alive "
        f"after {timeout}s: killing {len(victims)} stuck pod cgroup(s) holding {covered} "
        "bytes before choosing anyone new",
    )
