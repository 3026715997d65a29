"""Something the guard could stop to free memory: a process, or a pod on a node."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """What the policy needs to know about one killable thing, and nothing else.

    ``started_at`` is comparable only between candidates of the same target (seconds since
    boot for processes, wall clock for pods). ``memory_bytes`` is what stopping it would
    free. ``dying`` means it was already told to stop and has not gone yet.
    ``preference_rank`` orders classes before age: lower ranks go first (node mode gives
    BestEffort 0, Burstable 1, Guaranteed 2); within a rank the newest goes first.
    ``kill_only``: nothing can ask it to stop (a pod known from its cgroup alone, without a
    pod object to evict): only a kill frees it.
    """

    id: str
    name: str
    started_at: float
    memory_bytes: int
    protected: bool = False
    dying: bool = False
    preference_rank: int = 0
    kill_only: bool = False


def newest_first_key(candidate: Candidate) -> tuple[int, float, str]:
    """Sort key: preferred class first, then newest, then id so equal start times never
    depend on input order."""
    return (candidate.preference_rank, -candidate.started_at, candidate.id)
