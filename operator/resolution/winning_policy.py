"""Which policy governs a node: the highest priority among those selecting it.

Equal top priorities are a conflict: the winner is the policy whose name sorts first (so every
operator replica and every resync picks the same one), and all the tied policies report it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from oomguard.operator.resolution.policy import Policy


@dataclass(frozen=True)
class NodeResolution:
    winner: Policy | None
    selecting: tuple[str, ...]  # names of every policy whose selector matches the node
    tied: tuple[str, ...]  # names sharing the winner's priority (winner included); () if none

    @property
    def in_conflict(self) -> bool:
        return len(self.tied) > 1


def winning_policy(labels: Mapping[str, str], policies: Iterable[Policy]) -> NodeResolution:
    selecting = sorted(
        (policy for policy in policies if policy.selector.matches(labels)),
        key=lambda policy: (-policy.priority, policy.name),
    )
    if not selecting:
        return NodeResolution(winner=None, selecting=(), tied=())
    winner = selecting[0]
    tied = tuple(policy.name for policy in selecting if policy.priority == winner.priority)
    return NodeResolution(
        winner=winner,
        selecting=tuple(policy.name for policy in selecting),
        tied=tied if len(tied) > 1 else (),
    )
