"""Resolve every node at once: the desired NodeMemoryReserve settings per node, and what each
policy selects, wins and competes for (the input of its status)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from oomguard.operator.resolution.policy import InvalidPolicy, Policy
from oomguard.operator.resolution.winning_policy import NodeResolution, winning_policy
from oomguard.wire.node_settings import NodeSettings


@dataclass(frozen=True)
class NodeFacts:
    """What resolution needs from a Node: ``memory_bytes`` is None until the kubelet reports it."""

    name: str
    uid: str
    labels: Mapping[str, str]
    memory_bytes: int | None


@dataclass
class PolicyTally:
    selected: int = 0
    won: int = 0
    conflicting: set[str] = field(default_factory=set)
    conflicting_with: set[str] = field(default_factory=set)
    waiting_for_memory: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class ClusterResolution:
    desired: Mapping[str, NodeSettings]  # node name -> settings, for nodes a policy governs
    waiting: frozenset[str]  # nodes won by a percent policy but without known memory yet
    tallies: Mapping[str, PolicyTally]  # valid policy name -> tally
    invalid: Mapping[str, InvalidPolicy]


def resolve_cluster(
    nodes: Iterable[NodeFacts], policies: Iterable[Policy | InvalidPolicy]
) -> ClusterResolution:
    parsed = list(policies)
    valid = [policy for policy in parsed if isinstance(policy, Policy)]
    invalid = {policy.name: policy for policy in parsed if isinstance(policy, InvalidPolicy)}
    tallies = {policy.name: PolicyTally() for policy in valid}
    desired: dict[str, NodeSettings] = {}
    waiting: set[str] = set()
    # Nodes that agree on every label some selector reads resolve alike: match each distinct
    # projection once (a cluster has far fewer of them than nodes, which all differ in
    # kubernetes.io/hostname), and work each (winner, memory) pair's settings out once.
    keys = sorted(frozenset[str]().union(*(policy.selector.keys for policy in valid)))
    resolutions: dict[tuple[str | None, ...], NodeResolution] = {}
    settings: dict[tuple[str, int], NodeSettings] = {}
    for node in nodes:
        projection = tuple(node.labels.get(key) for key in keys)
        resolution = resolutions.get(projection)
        if resolution is None:
            resolution = resolutions[projection] = winning_policy(node.labels, valid)
        for name in resolution.selecting:
            tallies[name].selected += 1
        for name in resolution.tied:
            tallies[name].conflicting.add(node.name)
            tallies[name].conflicting_with.update(
                other for other in resolution.tied if other != name
            )
        winner = resolution.winner
        if winner is None:
            continue
        if not node.memory_bytes:  # unknown (or 0): memory.high cannot be worked out yet
            waiting.add(node.name)
            tallies[winner.name].waiting_for_memory.add(node.name)
            continue
        tallies[winner.name].won += 1
        template = settings.get((winner.name, node.memory_bytes))
        if template is None:
            template = settings[(winner.name, node.memory_bytes)] = winner.settings_for(
                node.name, node.memory_bytes
            )
        desired[node.name] = (
            template if template.node_name == node.name else replace(template, node_name=node.name)
        )
    return ClusterResolution(
        desired=desired, waiting=frozenset(waiting), tallies=tallies, invalid=invalid
    )
