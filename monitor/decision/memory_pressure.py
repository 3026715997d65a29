"""When the node agent says its node is under memory pressure. Pure: plain data, no clock.

Pressure begins when the agent sets out to free memory by force (an eviction or a
``cgroup.kill`` planned, before any answer: ``evicting``) or has freed some (``observe``),
lasts while that episode lasts (the last step still had something to free, or its victims
are still on the node) and ends ``cooldown`` seconds after the episode was first seen over.
An episode with nothing to evict (dry run, every pod protected) starts none: the point is
that an evicted pod's replacement is not scheduled back into the same storm, and reporting
it before the evictions go out gives the operator's taint a head start on that replacement.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class PressureReason(StrEnum):
    """The ``MemoryPressure`` condition's reason."""

    EVICTING = "Evicting"  # True: the episode that evicted is still going on
    COOLING_DOWN = "CoolingDown"  # True: it ended less than the cooldown ago
    NO_EVICTIONS = "NoRecentEvictions"  # False


@dataclass(frozen=True)
class PressureState:
    since: float | None = None  # when this pressure began (monotonic); None: no pressure
    calm_since: float | None = None  # when the episode was first seen over; None: going on
    freed: int = 0  # pods evicted or killed since ``since``

    @property
    def under_pressure(self) -> bool:
        return self.since is not None

    @property
    def reason(self) -> PressureReason:
        if self.since is None:
            return PressureReason.NO_EVICTIONS
        if self.calm_since is None:
            return PressureReason.EVICTING
        return PressureReason.COOLING_DOWN


def observe(
    state: PressureState, now: float, *, freed: int, episode: bool, cooldown: float
) -> PressureState:
    """The state after one step at ``now`` that evicted or killed ``freed`` pods and after
    which the episode still lasts (``episode``) or not."""
    if freed > 0:
        since = state.since if state.since is not None else now
        return PressureState(since, None if episode else now, state.freed + freed)
    if state.since is None:
        return state
    if episode:
        return replace(state, calm_since=None)
    calm_since = state.calm_since if state.calm_since is not None else now
    if now - calm_since >= cooldown:
        return PressureState()
    return replace(state, calm_since=calm_since)


def evicting(state: PressureState, now: float) -> PressureState:
    """The state once a step at ``now`` has planned evictions or kills and before they go
    out: under pressure, the episode going on; nothing counted as freed yet."""
    since = state.since if state.since is not None else now
    return PressureState(since, None, state.freed)


def message(state: PressureState, cooldown: float) -> str:
    """The condition's message (stable while the state is, so it costs no status writes)."""
    match state.reason:
        case PressureReason.EVICTING if state.freed == 0:
            return "evicting or killing pods to free memory; none gone yet in this episode"
        case PressureReason.EVICTING:
            return f"{state.freed} pod(s) evicted or killed in this episode; it is still going on"
        case PressureReason.COOLING_DOWN:
            return (
                f"{state.freed} pod(s) evicted or killed; the episode ended, pressure clears "
                f"{cooldown:g} s after it did"
            )
        case PressureReason.NO_EVICTIONS:
            return "no pod evicted or killed in a recent episode"
