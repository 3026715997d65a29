import threading

from oomguard.monitor.kube.backoff import Backoff
from oomguard.monitor.kube.pod_watch import PodList, PodWatch, WatchGoneError
from oomguard.monitor.triggers.stop_signal import StopSignal


def pod(uid, node="node-a", rv="1", name=None):
    return {
        "metadata": {"uid": uid, "name": name or uid, "namespace": "ns", "resourceVersion": rv},
        "spec": {"nodeName": node},
        "status": {"qosClass": "BestEffort", "startTime": "2024-01-01T00:00:00Z"},
    }


class ScriptedSource:
    """Replays a script of list results and watch streams; stops the watch when it runs out."""

    def __init__(self, stop, lists, watches):
        self.stop = stop
        self.lists = list(lists)
        self.watches = list(watches)
        self.calls = []

    def list_pods(self, node_name):
        self.calls.append(("list", node_name))
        result = self.lists.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    def watch_pods(self, node_name, resource_version, timeout_seconds):
        self.calls.append(("watch", resource_version))
        if not self.watches:
            self.stop.set()
            return
        script = self.watches.pop(0)
        if isinstance(script, Exception):
            raise script
        yield from script

    def interrupt(self):
        pass


def run(lists, watches):
    stop = StopSignal()
    source = ScriptedSource(stop, lists, watches)
    changes = []
    watch = PodWatch(
        source,
        "node-a",
        backoff=Backoff(initial=0.001, maximum=0.001),
        on_change=lambda: changes.append(1),
    )
    thread = threading.Thread(target=watch.run, args=(stop,))
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    return watch, source, changes


def test_list_then_watch_applies_events_in_order():
    watch, source, changes = run(
        [PodList([pod("a"), pod("b")], "10")],
        [
            [
                {"type": "ADDED", "object": pod("c", rv="11")},
                {"type": "MODIFIED", "object": pod("a", rv="12", name="a2")},
                {"type": "DELETED", "object": pod("b", rv="13")},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "20"}}},
            ],
            [],  # the server ended the watch: resume from the bookmark
        ],
    )
    snap = watch.snapshot()
    assert sorted(snap) == ["a", "c"]
    assert snap["a"].name == "a2"
    assert source.calls == [("list", "node-a"), ("watch", "10"), ("watch", "20"), ("watch", "20")]
    assert watch.synced.is_set() and watch.connected
    assert len(changes) == 4  # list + 3 pod events, no change for the bookmark


def test_gone_relists():
    watch, source, _ = run(
        [PodList([pod("a")], "10"), PodList([pod("b")], "30")],
        [WatchGoneError("too old")],
    )
    assert sorted(watch.snapshot()) == ["b"]
    assert watch.relists == 1
    assert source.calls[:3] == [("list", "node-a"), ("watch", "10"), ("list", "node-a")]


def test_errors_keep_the_last_map_and_retry():
    watch, source, _ = run(
        [PodList([pod("a")], "10"), ConnectionError("down"), PodList([pod("a"), pod("b")], "40")],
        [ConnectionError("reset")],
    )
    assert watch.errors == 2
    assert sorted(watch.snapshot()) == ["a", "b"]
    assert [c[0] for c in source.calls] == ["list", "watch", "list", "list", "watch"]


def test_first_list_failing_leaves_unsynced_until_success():
    stop = StopSignal()
    source = ScriptedSource(stop, [ConnectionError("down")] * 3 + [PodList([], "1")], [])
    watch = PodWatch(source, "node-a", backoff=Backoff(initial=0.001, maximum=0.001))
    watch.run(stop)
    assert watch.errors == 3 and watch.synced.is_set()


def test_other_nodes_and_unreadable_objects_are_ignored():
    watch, _, _ = run(
        [PodList([pod("a"), pod("x", node="node-b"), {"metadata": {}}], "10")],
        [[{"type": "ADDED", "object": pod("y", node="node-b")}]],
    )
    assert sorted(watch.snapshot()) == ["a"]
