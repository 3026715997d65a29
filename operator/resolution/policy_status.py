"""The status the operator writes on each MemoryReservePolicy: counts and conditions.

Conditions follow the Kubernetes convention (type, status, reason, message,
observedGeneration, lastTransitionTime); the transition time only moves when the status of
that condition actually changes, so an unchanged status compares equal and is not rewritten.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from oomguard.operator.resolution.cluster_resolution import PolicyTally
from oomguard.operator.resolution.policy import InvalidPolicy
from oomguard.wire.conditions import condition, stamp_transitions

MAX_LISTED_NODES = 50  # the schema's maxItems for status.conflictingNodes
MAX_NAMES_IN_MESSAGE = 10


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES_IN_MESSAGE])
    more = len(names) - MAX_NAMES_IN_MESSAGE
    return f"{shown} and {more} more" if more > 0 else shown


def policy_status(
    generation: int,
    tally: PolicyTally | None,
    invalid: InvalidPolicy | None,
    previous: Mapping[str, Any] | None,
    now: str,
) -> dict[str, Any]:
    """``now`` is an RFC 3339 timestamp; ``previous`` the status currently on the object."""
    previous_conditions = list((previous or {}).get("conditions") or [])
    if invalid is not None or tally is None:
        error = invalid.error if invalid is not None else "not resolved"
        conditions = [
            condition("Ready", False, "InvalidSpec", error, generation),
            condition("Conflict", False, "NotResolved", "the policy is not in effect", generation),
        ]
        return {
            "observedGeneration": generation,
            "nodesSelected": 0,
            "nodesWon": 0,
            "conflictingNodes": [],
            "conflictingNodeCount": 0,
            "conditions": stamp_transitions(conditions, previous_conditions, now),
        }
    conflicting = sorted(tally.conflicting)
    ready_message = f"selects {tally.selected} node(s), governs {tally.won}"
    if tally.waiting_for_memory:
        waiting = sorted(tally.waiting_for_memory)
        ready_message += (
            f"; {len(waiting)} node(s) wait for their memory capacity to be reported: "
            f"{_names(waiting)}"
        )
    if conflicting:
        conflict = condition(
            "Conflict",
            True,
            "EqualPriority",
            f"policies {_names(sorted(tally.conflicting_with))} have the same priority on "
            f"{len(conflicting)} node(s): {_names(conflicting)}; the name sorting first wins",
            generation,
        )
    else:
        conflict = condition(
            "Conflict", False, "NoConflict", "no equal-priority policy competes", generation
        )
    conditions = [condition("Ready", True, "Resolved", ready_message, generation), conflict]
    return {
        "observedGeneration": generation,
        "nodesSelected": tally.selected,
        "nodesWon": tally.won,
        "conflictingNodes": conflicting[:MAX_LISTED_NODES],
        "conflictingNodeCount": len(conflicting),
        "conditions": stamp_transitions(conditions, previous_conditions, now),
    }
