"""The watches report their health: a success for every list, event (bookmarks too) and
ordinary end of a watch; a restart, with its reason, for every 410 Gone and every failure."""

import threading

from test_node_reserve import GIB, NODE, FakeSource, obj
from test_pod_watch import ScriptedSource, pod

from oomguard.monitor.kube.backoff import Backoff
from oomguard.monitor.kube.node_reserve import NodeReserveWatcher, ReserveListing
from oomguard.monitor.kube.pod_watch import PodList, PodWatch, WatchGoneError
from oomguard.monitor.kube.watch_health import WatchName, WatchRestart
from oomguard.monitor.triggers.stop_signal import StopSignal


class Health:
    def __init__(self):
        self.seen = []

    def succeeded(self, watch):
        self.seen.append((watch, "ok"))

    def restarted(self, watch, reason):
        self.seen.append((watch, reason))


def test_pod_watch_reports_successes_and_restarts_by_reason():
    stop = StopSignal()
    source = ScriptedSource(
        stop,
        [PodList([pod("a")], "10"), ConnectionError("down"), PodList([pod("a")], "30")],
        [
            [
                {"type": "ADDED", "object": pod("b", rv="11")},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "20"}}},
            ],
            WatchGoneError("too old"),
        ],
    )
    health = Health()
    watch = PodWatch(source, "node-a", backoff=Backoff(initial=0.001, maximum=0.001), health=health)
    thread = threading.Thread(target=watch.run, args=(stop,))
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    p = WatchName.PODS
    assert health.seen == [
        (p, "ok"),  # list
        (p, "ok"),  # ADDED
        (p, "ok"),  # BOOKMARK
        (p, "ok"),  # the server ended the watch
        (p, WatchRestart.EXPIRED),  # 410 Gone: list again at once
        (p, WatchRestart.ERROR),  # the list failed: backoff
        (p, "ok"),  # list
        (p, "ok"),  # the last (empty) watch ended
    ]


def test_reserve_watch_reports_successes_and_restarts():
    source = FakeSource(
        ReserveListing(obj(GIB, 1, "5"), "5"),
        ["gone", [{"type": "MODIFIED", "object": obj(2 * GIB, 2, "6")}]],
    )
    stop = StopSignal()
    source.stop = stop
    health = Health()
    watcher = NodeReserveWatcher(
        source, NODE, 8 * GIB, backoff=Backoff(initial=0.01, maximum=0.01), health=health
    )
    thread = threading.Thread(target=watcher.run, args=(stop,))
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    r = WatchName.RESERVE
    assert health.seen == [
        (r, "ok"),  # list
        (r, WatchRestart.EXPIRED),
        (r, "ok"),  # list
        (r, "ok"),  # MODIFIED
        (r, "ok"),  # that watch ended
        (r, "ok"),  # the last (empty) watch ended
    ]
