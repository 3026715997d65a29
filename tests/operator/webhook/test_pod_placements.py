"""Watch events applied to the placement cache (plain dicts, no cluster)."""

from __future__ import annotations

from oomguard.operator.webhook.eviction_decision import PodPlacement
from oomguard.operator.webhook.pod_placements import apply_event, placement_of


def pod(name="p", ns="n", uid="u1", node="node-a", rv="10"):
    spec = {} if node is None else {"nodeName": node}
    return {
        "metadata": {"name": name, "namespace": ns, "uid": uid, "resourceVersion": rv},
        "spec": spec,
    }


def test_placement_of_reads_uid_and_node():
    assert placement_of(pod()) == (("n", "p"), PodPlacement("u1", "node-a"))
    assert placement_of(pod(node=None)) == (("n", "p"), PodPlacement("u1", ""))
    assert placement_of({"metadata": {"name": "p"}}) is None
    assert placement_of("junk") is None


def test_added_modified_deleted():
    store = {}
    assert apply_event(store, {"type": "ADDED", "object": pod(node=None, rv="1")}) == "1"
    assert store[("n", "p")] == PodPlacement("u1", "")
    apply_event(store, {"type": "MODIFIED", "object": pod(rv="2")})
    assert store[("n", "p")] == PodPlacement("u1", "node-a")
    assert apply_event(store, {"type": "DELETED", "object": pod(rv="3")}) == "3"
    assert store == {}


def test_late_delete_of_an_old_pod_keeps_the_new_one_of_the_same_name():
    store = {}
    apply_event(store, {"type": "ADDED", "object": pod(uid="new", node="node-b")})
    apply_event(store, {"type": "DELETED", "object": pod(uid="old")})
    assert store[("n", "p")] == PodPlacement("new", "node-b")


def test_bookmark_moves_the_version_only():
    store = {("n", "p"): PodPlacement("u1", "node-a")}
    bookmark = {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "99"}}}
    assert apply_event(store, bookmark) == "99"
    assert store == {("n", "p"): PodPlacement("u1", "node-a")}
