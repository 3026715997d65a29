"""Status conditions, written the same way on both custom resources.

A condition's ``lastTransitionTime`` says when its status last flipped, so writing the same
status again keeps the time the previous status carried.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def condition(
    kind: str, status: bool, reason: str, message: str, generation: int | None
) -> dict[str, Any]:
    """One condition, without its transition time (see :func:`stamp_transitions`);
    ``observedGeneration`` only when the generation is known."""
    entry: dict[str, Any] = {
        "type": kind,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
    }
    if generation is not None:
        entry["observedGeneration"] = generation
    return entry


def stamp_transitions(
    conditions: list[dict[str, Any]], previous: Sequence[Mapping[str, Any]], now: str
) -> list[dict[str, Any]]:
    """Give each condition its ``lastTransitionTime``: the previous one where its status did
    not change, ``now`` (RFC 3339) where it did or is new."""
    before = {old.get("type"): old for old in previous}
    for entry in conditions:
        old = before.get(entry["type"])
        if (
            old is not None
            and old.get("status") == entry["status"]
            and old.get("lastTransitionTime")
        ):
            entry["lastTransitionTime"] = old["lastTransitionTime"]
        else:
            entry["lastTransitionTime"] = now
    return conditions
