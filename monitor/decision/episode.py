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
