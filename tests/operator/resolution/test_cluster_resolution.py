import pytest

from oomguard.operator.resolution.cluster_resolution import NodeFacts, resolve_cluster
from oomguard.operator.resolution.policy import parse_policy

GI = 2**30


def pol(name, spec, generation=1):
    return parse_policy({"metadata": {"name": name, "generation": generation}, "spec": spec})


def node(name, memory=8 * GI, **labels):
    return NodeFacts(name=name, uid=f"uid-{name}", labels=labels, memory_bytes=memory)


def test_overlapping_policies():
    policies = [
        pol("base", {"reserve": {"absolute": "1Gi"}}),
        pol(
            "db",
            {
                "priority": 10,
                "nodeSelector": {"matchLabels": {"role": "db"}},
                "reserve": {"percent": 25},
            },
        ),
        pol("broken", {"reserve": {"percent": 0}}),
    ]
    nodes = [node("n1", role="db"), node("n2", role="web"), node("n3", memory=4 * GI, role="db")]
    result = resolve_cluster(nodes, policies)
    assert {name: s.source_policy for name, s in result.desired.items()} == {
        "n1": "db",
        "n2": "base",
        "n3": "db",
    }
    assert result.desired["n1"].reserve_bytes == 2 * GI
    assert result.desired["n3"].reserve_bytes == GI
    assert result.desired["n2"].reserve_bytes == GI
    assert result.desired["n2"].node_memory_bytes == 8 * GI
    assert result.tallies["base"].selected == 3
    assert result.tallies["base"].won == 1
    assert result.tallies["db"].selected == 2
    assert result.tallies["db"].won == 2
    assert set(result.invalid) == {"broken"}
    assert result.waiting == frozenset()


def test_unselected_nodes_get_nothing():
    result = resolve_cluster(
        [node("n1")],
        [pol("x", {"nodeSelector": {"matchLabels": {"a": "b"}}, "reserve": {"absolute": 1}})],
    )
    assert result.desired == {}
    assert result.tallies["x"].selected == 0


@pytest.mark.parametrize("memory", [None, 0])
def test_nodes_whose_memory_is_unknown_wait_whatever_the_reserve(memory):
    nodes = [node("n1", memory=memory, pool="p"), node("n2", memory=memory), node("n3")]
    policies = [
        pol(
            "pct",
            {
                "priority": 1,
                "nodeSelector": {"matchLabels": {"pool": "p"}},
                "reserve": {"percent": 5},
            },
        ),
        pol("abs", {"reserve": {"absolute": "1Gi"}}),
    ]
    result = resolve_cluster(nodes, policies)
    # no NodeMemoryReserve with nodeMemoryBytes 0: the agent could not work memory.high out
    assert result.waiting == frozenset({"n1", "n2"})
    assert set(result.desired) == {"n3"}
    assert result.tallies["pct"].waiting_for_memory == {"n1"}
    assert result.tallies["abs"].waiting_for_memory == {"n2"}
    assert result.tallies["pct"].won == 0 and result.tallies["abs"].won == 1


def test_conflicts_are_tallied_on_every_tied_policy():
    policies = [
        pol("a", {"priority": 2, "reserve": {"absolute": 1}}),
        pol(
            "b",
            {
                "priority": 2,
                "nodeSelector": {"matchLabels": {"x": "1"}},
                "reserve": {"absolute": 2},
            },
        ),
        pol("c", {"priority": 1, "reserve": {"absolute": 3}}),
    ]
    result = resolve_cluster([node("n1", x="1"), node("n2")], policies)
    assert result.desired["n1"].source_policy == "a"
    assert result.tallies["a"].conflicting == {"n1"}
    assert result.tallies["b"].conflicting == {"n1"}
    assert result.tallies["a"].conflicting_with == {"b"}
    assert result.tallies["b"].conflicting_with == {"a"}
    assert result.tallies["c"].conflicting == set()
    assert result.tallies["a"].won == 2
    assert result.tallies["b"].won == 0


def test_generators_are_consumed_once():
    policies = (p for p in [pol("a", {"reserve": {"absolute": 1}}), pol("bad", {})])
    result = resolve_cluster(iter([node("n1")]), policies)
    assert set(result.desired) == {"n1"}
    assert set(result.invalid) == {"bad"}


def test_nodes_alike_in_every_selected_label_share_one_match_but_keep_their_own_settings():
    """Resolution matches each distinct projection of the labels the selectors read once: the
    result must be what matching every node on its own gives, absent keys included."""
    import random

    from oomguard.operator.resolution.winning_policy import winning_policy

    rng = random.Random(19)
    policies = [
        pol("all", {"reserve": {"percent": 10}}),
        pol(
            "in",
            {
                "priority": 3,
                "nodeSelector": {"matchLabels": {"pool": "a"}},
                "reserve": {"absolute": "1Gi"},
            },
        ),
        pol(
            "notin",
            {
                "priority": 2,
                "nodeSelector": {
                    "matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z1"]}]
                },
                "reserve": {"absolute": "2Gi"},
            },
        ),
        pol(
            "gone",
            {
                "priority": 4,
                "nodeSelector": {
                    "matchExpressions": [
                        {"key": "gpu", "operator": "DoesNotExist"},
                        {"key": "pool", "operator": "Exists"},
                    ]
                },
                "reserve": {"percent": 20},
            },
        ),
    ]
    nodes = []
    for i in range(300):
        labels = {"kubernetes.io/hostname": f"n{i}"}
        for key, values in (("pool", ["a", "b", ""]), ("zone", ["z1", "z2"]), ("gpu", ["x"])):
            if rng.random() < 0.6:
                labels[key] = rng.choice(values)
        nodes.append(node(f"n{i}", memory=rng.choice([4, 8]) * GI, **labels))
    result = resolve_cluster(nodes, policies)
    valid = [p for p in policies]
    for n in nodes:
        winner = winning_policy(n.labels, valid).winner
        assert winner is not None
        assert result.desired[n.name] == winner.settings_for(n.name, n.memory_bytes)
    assert len({s.source_policy for s in result.desired.values()}) == 4
