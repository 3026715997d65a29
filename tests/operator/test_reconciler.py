import asyncio
import threading
from datetime import UTC, datetime

from kubernetes.client.exceptions import ApiException

from oomguard.operator.metrics import OperatorMetrics
from oomguard.operator.options import OperatorOptions
from oomguard.operator.reconcile_writer import ObservedReserve
from oomguard.operator.reconciler import ClusterSnapshot, PolicyEntry, Reconciler
from oomguard.operator.resolution.cluster_resolution import NodeFacts
from oomguard.operator.resolution.policy import parse_policy
from oomguard.operator.resolution.reconcile_plan import ActualReserve, WriteKind

GI = 2**30


class FakeApi:
    def __init__(self):
        self.calls = []
        self.version = 0
        self.fail_reserves = False
        self.missing_policies = set()

    def _next(self):
        self.version += 1
        return str(self.version)

    def create_reserve(self, body):
        if self.fail_reserves:
            raise ApiException(status=500, reason="boom")
        self.calls.append(("create", body["metadata"]["name"]))
        return self._next()

    def update_reserve(self, name, body):
        self.calls.append(("update", name))
        return self._next()

    def delete_reserve(self, name):
        self.calls.append(("delete", name))

    def patch_policy_status(self, name, status):
        if name in self.missing_policies:
            raise ApiException(status=404, reason="gone")
        self.calls.append(("status", name))
        self.last_status = status
        return self._next()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def policy(name, spec, generation=1):
    body = {"metadata": {"name": name, "generation": generation}, "spec": spec}
    return PolicyEntry(parse_policy(body), generation, {})


def make(snapshot, api=None, clock=None):
    api = api or FakeApi()
    metrics = OperatorMetrics()
    reconciler = Reconciler(
        lambda: snapshot["value"],
        api,
        OperatorOptions(override_seconds=30),
        metrics,
        clock=clock or Clock(),
        wall_clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
    )
    return reconciler, api, metrics


def nodes(**labels_by_node):
    return {n: NodeFacts(n, f"uid-{n}", labels, 8 * GI) for n, labels in labels_by_node.items()}


def test_writes_once_even_while_the_watch_lags():
    snap = {
        "value": ClusterSnapshot(
            nodes=nodes(a={"r": "db"}, b={}),
            policies={"base": policy("base", {"reserve": {"absolute": "1Gi"}})},
            reserves={},
        )
    }
    reconciler, api, metrics = make(snap)
    first = asyncio.run(reconciler.reconcile("event"))
    assert sorted(api.calls) == [("create", "a"), ("create", "b"), ("status", "base")]
    assert [w.kind for w in first.writes] == [WriteKind.CREATE, WriteKind.CREATE]
    # The watch has not delivered our writes yet: nothing is written again.
    api.calls.clear()
    asyncio.run(reconciler.reconcile("event"))
    assert api.calls == []
    assert metrics.total_writes() == 3


def test_catching_up_and_changes():
    snap = {
        "value": ClusterSnapshot(
            nodes=nodes(a={"r": "db"}),
            policies={
                "base": policy("base", {"reserve": {"absolute": "1Gi"}}),
                "db": policy(
                    "db",
                    {
                        "priority": 5,
                        "nodeSelector": {"matchLabels": {"r": "db"}},
                        "reserve": {"percent": 25},
                    },
                ),
            },
            reserves={},
        )
    }
    reconciler, api, _ = make(snap)
    asyncio.run(reconciler.reconcile("event"))
    created = reconciler._writer._own_reserves["a"]
    assert created.reserve is not None and created.reserve.spec["reserveBytes"] == 2 * GI
    # The watch catches up with our write: same resourceVersion, the override is dropped.
    snap["value"] = ClusterSnapshot(
        nodes=snap["value"].nodes,
        policies=snap["value"].policies,
        reserves={"a": ObservedReserve(created.reserve, created.resource_version)},
    )
    api.calls.clear()
    asyncio.run(reconciler.reconcile("event"))
    assert ("create", "a") not in api.calls and ("update", "a") not in api.calls
    assert "a" not in reconciler._writer._own_reserves
    # Relabel: exactly one update.
    snap["value"] = ClusterSnapshot(
        nodes=nodes(a={"r": "web"}),
        policies=snap["value"].policies,
        reserves=snap["value"].reserves,
    )
    api.calls.clear()
    asyncio.run(reconciler.reconcile("node"))
    assert [c for c in api.calls if c[0] != "status"] == [("update", "a")]
    assert reconciler._writer._own_reserves["a"].reserve.spec["sourcePolicy"] == "base"


def test_override_expires_so_drift_is_repaired():
    clock = Clock()
    snap = {
        "value": ClusterSnapshot(
            nodes=nodes(a={}),
            policies={"base": policy("base", {"reserve": {"absolute": "1Gi"}})},
            reserves={},
        )
    }
    reconciler, api, _ = make(snap, clock=clock)
    asyncio.run(reconciler.reconcile("event"))
    api.calls.clear()
    clock.now += 31  # someone deleted it and the watch said so long ago: repair
    asyncio.run(reconciler.reconcile("resync"))
    assert ("create", "a") in api.calls


def test_failed_writes_are_counted_and_retried():
    snap = {
        "value": ClusterSnapshot(
            nodes=nodes(a={}),
            policies={"base": policy("base", {"reserve": {"absolute": "1Gi"}})},
            reserves={},
        )
    }
    api = FakeApi()
    api.fail_reserves = True
    reconciler, api, metrics = make(snap, api=api)
    result = asyncio.run(reconciler.reconcile("event"))
    assert result.failed == 1
    assert reconciler._writer._own_reserves == {}
    errors = metrics.write_errors.labels(kind="NodeMemoryReserve", verb="create")
    assert errors._value.get() == 1
    api.fail_reserves = False
    asyncio.run(reconciler.reconcile("retry"))
    assert ("create", "a") in api.calls


def test_stale_reserves_are_deleted_and_gone_policies_ignored():
    stale = ActualReserve("a", {"nodeName": "a"}, "uid-a")
    snap = {
        "value": ClusterSnapshot(
            nodes=nodes(a={}),
            policies={
                "gone": policy(
                    "gone",
                    {"nodeSelector": {"matchLabels": {"x": "y"}}, "reserve": {"absolute": 1}},
                )
            },
            reserves={"a": ObservedReserve(stale, "7")},
        )
    }
    api = FakeApi()
    api.missing_policies.add("gone")
    reconciler, api, _ = make(snap, api=api)
    result = asyncio.run(reconciler.reconcile("event"))
    assert api.calls == [("delete", "a")]
    assert result.failed == 0
    # Our delete stands in until the watch shows the object gone.
    api.calls.clear()
    asyncio.run(reconciler.reconcile("event"))
    assert api.calls == []


def test_status_is_written_only_when_it_changes():
    snap = {
        "value": ClusterSnapshot(
            nodes=nodes(a={}),
            policies={"base": policy("base", {"reserve": {"absolute": "1Gi"}})},
            reserves={},
        )
    }
    reconciler, api, _ = make(snap)
    asyncio.run(reconciler.reconcile("event"))
    written = api.last_status
    assert written["nodesWon"] == 1
    assert {c["type"]: c["status"] for c in written["conditions"]} == {
        "Ready": "True",
        "Conflict": "False",
    }
    # The watch shows the written status: still nothing to write.
    entry = snap["value"].policies["base"]
    snap["value"] = ClusterSnapshot(
        nodes=snap["value"].nodes,
        policies={"base": PolicyEntry(entry.parsed, entry.generation, written)},
        reserves={},
    )
    api.calls.clear()
    asyncio.run(reconciler.reconcile("event"))
    assert [c for c in api.calls if c[0] == "status"] == []


def test_request_wakes_the_loop():
    snap = {
        "value": ClusterSnapshot(
            nodes=nodes(a={}),
            policies={"base": policy("base", {"reserve": {"absolute": "1Gi"}})},
            reserves={},
        )
    }

    async def scenario():
        reconciler, api, _ = make(snap)
        task = asyncio.create_task(reconciler.run())
        await asyncio.sleep(0.05)
        assert api.calls == []  # not ready before the first request
        reconciler.request("node")
        for _ in range(100):
            await asyncio.sleep(0.02)
            if api.calls:
                break
        task.cancel()
        return api.calls

    assert ("create", "a") in asyncio.run(scenario())


def test_statuses_and_reserves_are_written_side_by_side():
    """Every write of one reconcile is in flight at once (up to write_concurrency): two
    policies' statuses and a reserve each wait here until all three are being written."""
    import threading

    snap = {
        "value": ClusterSnapshot(
            nodes=nodes(a={"r": "db"}),
            policies={
                "base": policy("base", {"reserve": {"absolute": "1Gi"}}),
                "other": policy(
                    "other",
                    {"nodeSelector": {"matchLabels": {"r": "x"}}, "reserve": {"percent": 5}},
                ),
            },
            reserves={},
        )
    }
    all_in_flight = threading.Barrier(3, timeout=10)

    class Meeting(FakeApi):
        def create_reserve(self, body):
            all_in_flight.wait()
            return super().create_reserve(body)

        def patch_policy_status(self, name, status):
            all_in_flight.wait()
            return super().patch_policy_status(name, status)

    reconciler, api, _ = make(snap, api=Meeting())
    result = asyncio.run(reconciler.reconcile("event"))
    reconciler.close()
    assert result.failed == 0
    assert sorted(api.calls) == [("create", "a"), ("status", "base"), ("status", "other")]
    assert result.status_writes == ["base", "other"]


# -- pipelining: a reconcile does not wait for the writes of the one before ---------------


class Held(FakeApi):
    """Writes of the named reserves wait in their thread until released."""

    def __init__(self, *held):
        super().__init__()
        self.held = set(held)
        self.entered = {name: threading.Event() for name in ("a", "b", "update-a")}
        self.release = threading.Event()
        self.created = set()
        self.overlaps = []
        self.statuses = []

    def patch_policy_status(self, name, status):
        self.statuses.append((name, status))
        return super().patch_policy_status(name, status)

    def create_reserve(self, body):
        name = body["metadata"]["name"]
        self.entered[name].set()
        if name in self.held:
            assert self.release.wait(30), "never released"
        result = super().create_reserve(body)
        self.created.add(name)
        return result

    def update_reserve(self, name, body):
        self.entered["update-" + name].set()
        if name not in self.created:
            self.overlaps.append(name)  # the update went out before the create had ended
        return super().update_reserve(name, body)


def _snap(node_names, reserve="1Gi"):
    return ClusterSnapshot(
        nodes=nodes(**{n: {} for n in node_names}),
        policies={"base": policy("base", {"reserve": {"absolute": reserve}})},
        reserves={},
    )


def test_a_reconcile_does_not_wait_for_a_slow_write_of_the_one_before():
    snap = {"value": _snap(["a"])}
    api = Held("a")
    reconciler, _, _ = make(snap, api=api)

    async def scenario():
        first = asyncio.create_task(reconciler.reconcile("event"))
        assert await asyncio.to_thread(api.entered["a"].wait, 10)
        snap["value"] = _snap(["a", "b"])
        second = await asyncio.wait_for(reconciler.reconcile("node"), 10)
        api.release.set()
        return await first, second

    first, second = asyncio.run(scenario())
    reconciler.close()
    assert [w.name for w in first.writes] == ["a"]
    assert [w.name for w in second.writes] == ["b"]  # a, in flight, is not planned again
    assert sorted(c for c in api.calls if c[0] != "status") == [("create", "a"), ("create", "b")]


def test_a_new_desire_for_an_object_in_flight_goes_out_after_it():
    snap = {"value": _snap(["a"], reserve="1Gi")}
    api = Held("a")
    reconciler, _, _ = make(snap, api=api)

    async def scenario():
        first = asyncio.create_task(reconciler.reconcile("event"))
        assert await asyncio.to_thread(api.entered["a"].wait, 10)
        snap["value"] = _snap(["a"], reserve="2Gi")
        second = asyncio.create_task(reconciler.reconcile("policy"))
        # An update that did not wait for the create would go out now; give it the chance.
        await asyncio.to_thread(api.entered["update-a"].wait, 1)
        api.release.set()
        return await first, await second

    _, second = asyncio.run(scenario())
    reconciler.close()
    assert [w.kind for w in second.writes] == [WriteKind.UPDATE]
    assert api.overlaps == []
    assert [c for c in api.calls if c[0] != "status"] == [("create", "a"), ("update", "a")]


def test_the_loop_plans_again_while_writes_are_in_flight():
    snap = {"value": _snap(["a"])}
    api = Held("a")
    reconciler, _, _ = make(snap, api=api)

    async def scenario():
        loop_task = asyncio.create_task(reconciler.run())
        reconciler.request("node")
        assert await asyncio.to_thread(api.entered["a"].wait, 10)
        snap["value"] = _snap(["a", "b"])
        reconciler.request("node")
        b_written = await asyncio.to_thread(api.entered["b"].wait, 10)
        a_still_held = not api.release.is_set()
        api.release.set()
        loop_task.cancel()
        return b_written, a_still_held

    b_written, a_still_held = asyncio.run(scenario())
    reconciler.close()
    assert b_written and a_still_held
