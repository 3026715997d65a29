"""bench/operator_scale.py works out what every NodeMemoryReserve must say before its clocks
start; it must agree with the resolution of the objects the apiserver then holds."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import operator_scale as bench


class _Custom:
    def __init__(self, policies: int) -> None:
        self._policies = bench.make_policies(policies)

    def list_cluster_custom_object(self, group: str, version: str, plural: str) -> dict[str, Any]:
        assert plural == "memoryreservepolicies"
        return {"items": self._policies}


class _Core:
    def __init__(self, nodes: int, relabelled: frozenset[int]) -> None:
        self._nodes = []
        for i in range(nodes):
            node = copy.deepcopy(bench.make_node(i))
            node.metadata.uid = f"uid-{i}"
            if i in relabelled:  # what the benchmark's patch does
                node.metadata.labels["pool"] = "p0"
            self._nodes.append(node)

    def list_node(self) -> SimpleNamespace:
        return SimpleNamespace(items=self._nodes)


def test_the_planned_specs_are_what_the_listed_objects_resolve_to() -> None:
    planned = bench.planned_specs(300, 20)
    assert planned == bench.expected_specs(_Custom(20), _Core(300, frozenset()))
    assert len(planned) == 300


def test_the_planned_relabel_is_what_the_patched_objects_resolve_to() -> None:
    relabelled = frozenset(range(1, 60, 2))
    before = bench.planned_specs(300, 20)
    after = bench.planned_specs(300, 20, relabelled)
    assert after == bench.expected_specs(_Custom(20), _Core(300, relabelled))
    changed = {name for name in after if after[name] != before[name]}
    assert changed, "the relabel must change some reserves, or the phase measures nothing"
    assert changed <= {f"bench-node-{i:04}" for i in relabelled}


def test_a_wrong_plan_stops_the_benchmark() -> None:
    planned = bench.planned_specs(50, 20)
    listed = dict(planned, **{"bench-node-0003": {"policy": "other"}})
    try:
        bench.check_expectation(planned, listed)
    except SystemExit as exc:
        assert "bench-node-0003" in str(exc)
    else:
        raise AssertionError("a plan that differs from the listed objects went unnoticed")
