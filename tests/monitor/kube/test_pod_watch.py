import threading

from monitor_fakes import wait_for

from oomguard.monitor.kube.backoff import Backoff
from oomguard.monitor.kube.pod_watch import PodList, PodWatch, WatchGoneError
from oomguard.monitor.kube.watch_health import WatchRestart
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


class RecordedBackoff(Backoff):
    """Asked for delays (recorded, as drawn) but never makes the test wait."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.drawn = []

    def next_delay(self):
        self.drawn.append(super().next_delay())
        return 0.0

    def reset(self):
        self.drawn.append("reset")
        super().reset()


def run(lists, watches, relist=None):
    stop = StopSignal()
    source = ScriptedSource(stop, lists, watches)
    changes = []
    watch = PodWatch(
        source,
        "node-a",
        backoff=Backoff(initial=0.001, maximum=0.001),
        relist=relist or RecordedBackoff(initial=1, maximum=1),
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


def test_gone_relists_after_a_jittered_growing_delay_reset_by_a_good_watch():
    """After an apiserver restart every agent hears 410 at once: each waits a delay drawn
    below an exponential cap before relisting, so thousands do not relist together."""
    draws = iter([0.25, 0.5, 0.75])
    relist = RecordedBackoff(initial=2, maximum=60, full_jitter=True, rng=lambda: next(draws))
    watch, source, _ = run(
        [PodList([pod("a")], str(rv)) for rv in (10, 20, 30, 40)],
        [WatchGoneError("too old"), WatchGoneError("too old"), [], WatchGoneError("again")],
        relist=relist,
    )
    # 2 s * 0.25, then 4 s * 0.5; a watch that ran to its end resets; then 2 s * 0.75
    assert relist.drawn == [0.5, 2.0, "reset", 1.5, "reset"]
    assert watch.relists == 3
    assert [c[0] for c in source.calls].count("list") == 4


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


def test_a_silent_watch_is_given_up_within_a_minute():
    """Item 9 of "do no harm": a stalled watch (no event, no bookmark, no error) fails on the
    socket's read timeout and the pods are listed again within about a minute, not five."""
    from oomguard.monitor.kube.pod_watch import KubernetesPodSource

    class Core:
        kwargs = None

        def list_pod_for_all_namespaces(self, **kwargs):
            Core.kwargs = kwargs
            raise TimeoutError("read timed out")  # what a silent watch ends in

    class Recording(ScriptedSource):
        def watch_pods(self, node_name, resource_version, timeout_seconds):
            self.timeouts.append(timeout_seconds)
            # the real source with the timeout the watch asks for
            yield from KubernetesPodSource(Core()).watch_pods(
                node_name, resource_version, timeout_seconds
            )

    stop = StopSignal()
    source = Recording(stop, [PodList([], "5"), PodList([], "6")], [])
    source.timeouts = []
    source.list_pods = _stop_after(source.list_pods, stop, calls=2)
    watch = PodWatch(source, "node-a", backoff=Backoff(initial=0.001, maximum=0.001))
    thread = threading.Thread(target=watch.run, args=(stop,))
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    _connect, read = Core.kwargs["_request_timeout"]
    assert source.timeouts[0] <= Core.kwargs["timeout_seconds"] < read <= 60
    assert Core.kwargs["allow_watch_bookmarks"] is True
    assert watch.errors == 1  # the stall counted as a failure: disconnected, then relisted
    assert [c[0] for c in source.calls] == ["list", "list"]  # listed again


def _stop_after(call, stop, calls):
    count = [0]

    def wrapped(*args):
        count[0] += 1
        if count[0] >= calls:
            stop.set()
        return call(*args)

    return wrapped


class BlockingSource(ScriptedSource):
    """A watch that blocks reading until ``interrupt`` (as a real one does on a quiet node)."""

    def __init__(self, stop, lists):
        super().__init__(stop, lists, [])
        self.broken = threading.Event()
        self.watching = threading.Event()

    def list_pods(self, node_name):
        if not self.lists:
            self.stop.set()
            return PodList([], "99")
        return super().list_pods(node_name)

    def watch_pods(self, node_name, resource_version, timeout_seconds):
        self.calls.append(("watch", resource_version))
        self.watching.set()
        self.broken.wait(30)
        self.broken.clear()
        self.watching.clear()
        raise ConnectionError("socket shut down under the reader")
        yield  # a generator, like the real one

    def interrupt(self):
        self.broken.set()


def test_a_relist_asked_for_breaks_the_watch_and_lists_at_once():
    """A pod cgroup without a pod object: the agent asks, the watch lists again at once,
    without the error backoff, and counts why."""
    stop = StopSignal()
    source = BlockingSource(stop, [PodList([pod("a")], "10"), PodList([pod("a"), pod("b")], "20")])
    restarts = []

    class Health:
        def succeeded(self, watch):
            pass

        def restarted(self, watch, reason):
            restarts.append(reason)

    slow = RecordedBackoff(initial=3600, maximum=3600)
    watch = PodWatch(source, "node-a", backoff=slow, health=Health())
    thread = threading.Thread(target=watch.run, args=(stop,))
    thread.start()
    assert source.watching.wait(10)
    watch.request_relist()
    assert wait_for(lambda: "b" in watch.snapshot())
    stop.set()
    source.interrupt()
    thread.join(10)
    assert not thread.is_alive()
    assert [c[0] for c in source.calls][:3] == ["list", "watch", "list"]
    assert restarts[0] is WatchRestart.UNMATCHED_CGROUP
    assert watch.relists == 1
    # each list succeeded and reset the backoff; no error delay was drawn between them
    assert slow.drawn[:2] == ["reset", "reset"]
