"""Watch events applied to the placement cache (plain dicts, no cluster)."""

from __future__ import annotations

import pytest

from oomguard.operator.webhook.eviction_decision import PodPlacement
from oomguard.operator.webhook.pod_placements import (
    WatchExpired,
    WatchFailed,
    _lines,
    apply_event,
    placement_of,
)


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


def test_errors():
    with pytest.raises(WatchExpired):
        apply_event({}, {"type": "ERROR", "object": {"code": 410, "message": "too old"}})
    with pytest.raises(WatchFailed):
        apply_event({}, {"type": "ERROR", "object": {"code": 500}})


class FakeStream:
    def __init__(self, chunks):
        self.chunks = chunks

    def stream(self, amt=None, decode_content=False):
        yield from self.chunks


def test_lines_split_across_chunks():
    chunks = [b'{"a":', b'1}\n{"b":2}\n\n{"c"', b":3}"]
    assert list(_lines(FakeStream(chunks))) == ['{"a":1}', '{"b":2}', '{"c":3}']
