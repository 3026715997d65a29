"""When a loop spaces its steps: the episode rule both loops (guard, node agent) follow. Pure.

An episode lasts while the last decision still had something to free (victims chosen,
waiting for those in flight, or nobody left to choose) or while victims it chose are still
there. During an episode a step measures everything again, and triggers (memory.events
``high`` can rise hundreds of times a second while victims exit) are held and coalesced so
steps come at most one per spacing. Once a step found nothing to free and its victims are
gone, the next trigger is a new breach and is handled at once.
"""

from __future__ import annotations

from oomguard.monitor.decision.newest_first import Outcome


def episode_lasts(last_outcome: Outcome | None, victims_present: bool) -> bool:
    """Whether to hold and space triggers (see the module doc)."""
    return victims_present or last_outcome is not Outcome.NOTHING_TO_FREE


class EpisodeClock:
    """How long each episode lasted, from the step that first found memory to free (when
    its trigger noticed the breach) to the step that ends it by the rule above (nothing left
    to free, the victims gone: usage back under target). Pure: the times are passed in.

    An episode's end is seen by the first step after it ended, so its duration is accurate
    to one step's spacing (the guard's re-check, the agent's tick). An episode still open
    when the loop stops is never reported.
    """

    def __init__(self) -> None:
        self.started_at: float | None = None

    def after_step(self, started_at: float, now: float, lasts: bool) -> float | None:
        """After each step: ``lasts`` is :func:`episode_lasts` of the state the step left,
        ``started_at`` when this step's trigger noticed trouble (its measurement time for a
        timer), ``now`` when it measured. The duration of the episode this step ended, if
        it ended one; None otherwise."""
        if lasts:
            if self.started_at is None:
                self.started_at = min(started_at, now)
            return None
        if self.started_at is None:
            return None
        duration = max(0.0, now - self.started_at)
        self.started_at = None
        return duration
