from oomguard.monitor.settings import NodeSettings
from oomguard.operator.resolution.cluster_resolution import NodeFacts
from oomguard.operator.resolution.reconcile_plan import (
    ActualReserve,
    WriteKind,
    plan_writes,
    reserve_body,
)


def settings(node, reserve=100, policy="p"):
    return NodeSettings(
        node_name=node, node_memory_bytes=1000, reserve_bytes=reserve, source_policy=policy
    )


NODES = {n: NodeFacts(n, f"uid-{n}", {}, 1000) for n in ("a", "b", "c", "d")}


def actual(node, reserve=100, uid=None, policy="p"):
    return ActualReserve(node, settings(node, reserve, policy).to_spec(), uid or f"uid-{node}")


def test_body_is_owned_by_the_node():
    body = reserve_body(settings("a"), "uid-a")
    assert body["metadata"]["name"] == "a"
    assert body["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": "a", "uid": "uid-a"}
    ]
    assert body["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "oomguard-operator"}
    assert body["spec"]["reserveBytes"] == 100
    assert body["kind"] == "NodeMemoryReserve"
    assert body["apiVersion"] == "oomguard.io/v1alpha1"


def test_nothing_to_do_when_equal():
    desired = {"a": settings("a"), "b": settings("b")}
    assert plan_writes(desired, frozenset(), NODES, {"a": actual("a"), "b": actual("b")}) == []


def test_create_update_delete_keep():
    desired = {"a": settings("a"), "b": settings("b", reserve=200), "c": settings("c")}
    existing = {"b": actual("b"), "c": actual("c", uid="old"), "d": actual("d"), "e": actual("e")}
    writes = plan_writes(desired, frozenset({"e"}), NODES, existing)
    assert [(w.kind, w.name) for w in writes] == [
        (WriteKind.CREATE, "a"),
        (WriteKind.UPDATE, "b"),
        (WriteKind.UPDATE, "c"),
        (WriteKind.DELETE, "d"),
    ]
    assert writes[1].body is not None and writes[1].body["spec"]["reserveBytes"] == 200
    assert writes[2].body is not None
    assert writes[2].body["metadata"]["ownerReferences"][0]["uid"] == "uid-c"
    assert writes[3].body is None


def test_vanished_nodes_are_left_to_the_garbage_collector_unless_unowned():
    existing = {
        "gone": ActualReserve("gone", settings("gone").to_spec(), "uid-gone"),
        "stray": ActualReserve("stray", settings("stray").to_spec(), None),
    }
    writes = plan_writes({}, frozenset(), NODES, existing)
    assert [(w.kind, w.name) for w in writes] == [(WriteKind.DELETE, "stray")]


def test_int_and_float_compare_equal_after_a_json_round_trip():
    spec = settings("a").to_spec()
    spec["monitor"]["threshold"]["usagePercent"] = 95  # Go re-serialises 95.0 as 95
    assert (
        plan_writes(
            {"a": settings("a")}, frozenset(), NODES, {"a": ActualReserve("a", spec, "uid-a")}
        )
        == []
    )


def test_nodes_alike_but_for_their_name_each_get_their_own_spec():
    desired = {n: settings(n) for n in ("a", "b", "c")}
    writes = plan_writes(desired, frozenset(), NODES, {"b": actual("b", reserve=7)})
    assert [(w.kind, w.name) for w in writes] == [
        (WriteKind.CREATE, "a"),
        (WriteKind.UPDATE, "b"),
        (WriteKind.CREATE, "c"),
    ]
    for write in writes:
        assert write.body is not None
        assert write.body["spec"] == desired[write.name].to_spec()
        assert write.body["metadata"]["name"] == write.name
