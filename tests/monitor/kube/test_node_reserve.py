import threading
from datetime import UTC, datetime

from oomguard.monitor.kube.backoff import Backoff
from oomguard.monitor.kube.node_reserve import (
    NodeReserveStatusWriter,
    NodeReserveWatcher,
    ReserveListing,
    ReserveReport,
    WatchGoneError,
    reserve_status,
    state_for,
)
from oomguard.monitor.settings import GIB, NodeSettings, default_node_settings
from oomguard.monitor.triggers.stop_signal import StopSignal

NODE = "node-a"


def spec(reserve=GIB, node=NODE):
    return NodeSettings(node, 8 * GIB, reserve, source_policy="p").to_spec()


def obj(reserve=GIB, generation=1, rv="10", node=NODE, raw_spec=None):
    return {
        "metadata": {"name": node, "generation": generation, "resourceVersion": rv},
        "spec": raw_spec if raw_spec is not None else spec(reserve, node),
    }


def test_state_without_object_is_defaults():
    state = state_for(None, NODE, 8 * GIB, None)
    assert state.from_defaults
    assert state.settings == default_node_settings(NODE, 8 * GIB)
    assert state.generation is None


def test_state_from_object():
    state = state_for(obj(reserve=2 * GIB, generation=4), NODE, 8 * GIB, None)
    assert not state.from_defaults
    assert state.settings.reserve_bytes == 2 * GIB
    assert state.generation == 4
    assert state.error is None


def test_bad_spec_keeps_previous_settings():
    good = state_for(obj(reserve=2 * GIB), NODE, 8 * GIB, None)
    bad = state_for(obj(raw_spec={"nodeName": NODE}, generation=2), NODE, 8 * GIB, good)
    assert bad.settings == good.settings
    assert bad.generation == 2
    assert "sourcePolicy" in bad.error
    other = state_for(obj(node="node-b", raw_spec=spec(node="node-b")), NODE, 8 * GIB, None)
    assert "not this node" in other.error
    assert other.from_defaults


class FakeSource:
    def __init__(self, listing, batches):
        self.listing = listing
        self.batches = list(batches)
        self.watches = []
        self.stop = None

    def list_reserve(self, node_name):
        assert node_name == NODE
        return self.listing

    def watch_reserve(self, node_name, resource_version, timeout_seconds):
        self.watches.append(resource_version)
        if not self.batches:
            self.stop.set()
            return iter(())
        batch = self.batches.pop(0)
        if batch == "gone":
            raise WatchGoneError("too old")
        return iter(batch)

    def interrupt(self):
        pass


def run_watcher(source):
    stop = StopSignal()
    source.stop = stop
    changes = []
    relist = Backoff(initial=1, maximum=1, full_jitter=True, rng=lambda: 0.0)
    watcher = NodeReserveWatcher(
        source,
        NODE,
        8 * GIB,
        backoff=Backoff(initial=0.01, maximum=0.01),
        relist=relist,
        on_change=changes.append,
    )
    thread = threading.Thread(target=watcher.run, args=(stop,))
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    return watcher, changes


def test_watcher_follows_create_update_delete():
    source = FakeSource(
        ReserveListing(None, "5"),
        [
            [
                {"type": "ADDED", "object": obj(GIB, 1, "6")},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}},
                {"type": "MODIFIED", "object": obj(3 * GIB, 2, "8")},
            ],
            [{"type": "DELETED", "object": obj(3 * GIB, 2, "9")}],
        ],
    )
    watcher, changes = run_watcher(source)
    assert [c.settings.reserve_bytes for c in changes] == [GIB, 3 * GIB, 8 * GIB // 10]
    assert changes[-1].from_defaults
    assert source.watches == ["5", "8", "9"]
    assert watcher.synced.is_set()


def test_watcher_relists_on_gone_and_ignores_other_names():
    source = FakeSource(
        ReserveListing(obj(GIB, 1, "5"), "5"),
        ["gone", [{"type": "ADDED", "object": obj(node="node-b", raw_spec=spec(node="node-b"))}]],
    )
    watcher, changes = run_watcher(source)
    assert [c.settings.reserve_bytes for c in changes] == [GIB]  # relist: same state, no change
    assert watcher.current().settings.reserve_bytes == GIB


def test_status_body_and_conditions():
    state = state_for(obj(reserve=GIB, generation=3), NODE, 8 * GIB, None)
    report = ReserveReport(
        state=state,
        guarded_cgroup="kubepods.slice",
        memory_high_bytes=7 * GIB,
        memory_max_bytes=None,
        usage_bytes=GIB,
        memory_events={"low": 0, "high": 5, "max": 0, "oom": 0, "oom_kill": 0, "other": 9},
    )
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    status = reserve_status(report, None, t0)
    assert status["observedGeneration"] == 3
    assert status["memoryHighBytes"] == 7 * GIB
    assert "memoryMaxBytes" not in status
    assert status["memoryEvents"] == {"low": 0, "high": 5, "max": 0, "oom": 0, "oomKill": 0}
    cond = {c["type"]: c for c in status["conditions"]}
    assert cond["Enforcing"]["status"] == "True"
    assert cond["Enforcing"]["reason"] == "Applied"
    assert cond["Degraded"]["status"] == "False"
    later = reserve_status(
        ReserveReport(
            **{
                **report.__dict__,
                "degraded_reason": "MemoryHighUnsupported",
                "memory_high_bytes": None,
            }
        ),
        status,
        datetime(2026, 1, 2, tzinfo=UTC),
    )
    cond2 = {c["type"]: c for c in later["conditions"]}
    assert cond2["Enforcing"]["status"] == "False"
    assert cond2["Degraded"]["reason"] == "MemoryHighUnsupported"
    assert cond2["Degraded"]["lastTransitionTime"] == "2026-01-02T00:00:00Z"


def test_memory_pressure_condition():
    from oomguard.monitor.decision.memory_pressure import PressureState

    state = state_for(obj(generation=2), NODE, 8 * GIB, None)
    calm = ReserveReport(state, "kubepods.slice", 7 * GIB, None, GIB, {})
    t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    before = reserve_status(calm, None, t0)
    cond = {c["type"]: c for c in before["conditions"]}["MemoryPressure"]
    assert (cond["status"], cond["reason"]) == ("False", "NoRecentEvictions")
    pressed = ReserveReport(
        state,
        "kubepods.slice",
        7 * GIB,
        None,
        GIB,
        {},
        pressure=PressureState(since=1.0, freed=2),
        pressure_cooldown=60,
    )
    after = reserve_status(pressed, before, t1)
    cond = {c["type"]: c for c in after["conditions"]}["MemoryPressure"]
    assert (cond["status"], cond["reason"]) == ("True", "Evicting")
    assert cond["lastTransitionTime"] == "2026-01-01T00:05:00Z"  # the operator's clock
    assert "2 pod(s)" in cond["message"] and cond["observedGeneration"] == 2


def test_status_writer_reports_missing_object():
    from kubernetes.client.exceptions import ApiException

    class Custom:
        def __init__(self, status):
            self.status = status
            self.calls = []

        def patch_cluster_custom_object_status(self, *args, **kwargs):
            self.calls.append(args)
            if self.status:
                raise ApiException(status=self.status)

    ok = Custom(None)
    assert NodeReserveStatusWriter(ok, NODE).write({"usageBytes": 1}) is True
    assert ok.calls[0][3] == NODE
    assert NodeReserveStatusWriter(Custom(404), NODE).write({}) is False
