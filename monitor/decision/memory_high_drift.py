"""Drift of kubepods ``memory.high`` away from the value the agent set, in episodes. Pure.

Something else may write the agent's line: systemd re-applying ``kubepods.slice`` from its own
stored ``MemoryHigh=`` (a ``daemon-reload``, the kubelet updating the slice), an
administrator, another agent. The agent puts its value back on every check; an episode lasts
from the first check that finds another value to the next check that finds its own, so a
writer that keeps fighting is logged once, while every value put back is counted.
"""

from __future__ import annotations

from enum import Enum


class DriftCheck(Enum):
    IN_PLACE = "in-place"  # the value the agent set is there
    STARTED = "started"  # another value, the first of an episode
    CONTINUES = "continues"  # another value again, before any check found ours


class DriftEpisodes:
    def __init__(self) -> None:
        self.drifting = False
        self.repairs = 0  # checks that found another value (each one put back)
        self.episodes = 0

    def observe(self, drifted: bool) -> DriftCheck:
        """One check: ``drifted`` when the value found is not the one the agent set."""
        if not drifted:
            self.drifting = False
            return DriftCheck.IN_PLACE
        self.repairs += 1
        if self.drifting:
            return DriftCheck.CONTINUES
        self.drifting = True
        self.episodes += 1
        return DriftCheck.STARTED

    def end(self) -> None:
        """The agent changed or gave back the value itself: any episode is over."""
        self.drifting = False
