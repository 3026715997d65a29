"""Which watch events make the memory-pressure taint loop plan again: only a taint or a
pressure report that changed, never the listing (or creation) of calm objects, since each
plan goes over every node."""

import asyncio

import pytest

from oomguard.operator import pressure_taint_handlers as handlers

TAINT = {"taints": [{"key": "oomguard.io/memory-pressure", "effect": "NoSchedule"}]}
UNDER_PRESSURE = {
    "conditions": [
        {
            "type": "MemoryPressure",
            "status": "True",
            "lastTransitionTime": "2026-12-07T04:00:00Z",
        }
    ],
    "lastUpdateTime": "2026-12-07T04:00:05Z",
}
CALM_STATUS = {
    "conditions": [{"type": "MemoryPressure", "status": "False"}],
    "lastUpdateTime": "2026-12-07T04:00:05Z",
}


class CountingTaints:
    def __init__(self) -> None:
        self.requests = 0

    def request(self) -> None:
        self.requests += 1


@pytest.fixture
def taints(monkeypatch):
    counting = CountingTaints()
    monkeypatch.setattr(handlers.running, "taints", counting)
    monkeypatch.setattr(handlers, "_seen_taints", set())
    monkeypatch.setattr(handlers, "_seen_pressure", {})
    return counting


def node(event: str | None, name: str, spec: dict) -> None:
    asyncio.run(handlers.pressure_taint_changed(type=event, name=name, spec=spec))


def reserve(event: str | None, name: str, status: dict) -> None:
    asyncio.run(handlers.reserve_pressure_changed(type=event, name=name, status=status))


def test_thousands_of_calm_nodes_and_reserves_request_nothing(taints):
    for i in range(1000):
        node(None, f"n{i}", {})  # the listing at start
        node("ADDED", f"m{i}", {"taints": [{"key": "other", "effect": "NoSchedule"}]})
        reserve(None, f"n{i}", {})
        reserve("ADDED", f"m{i}", CALM_STATUS)
        reserve("MODIFIED", f"m{i}", CALM_STATUS)  # a calm agent's refresh
    assert taints.requests == 0


def test_our_taint_coming_and_going_requests_each_time(taints):
    node(None, "n1", TAINT)  # listed with our taint: the loop must look (stale taint?)
    node("MODIFIED", "n1", TAINT)  # a heartbeat: nothing new
    assert taints.requests == 1
    node("MODIFIED", "n1", {})
    assert taints.requests == 2
    node("DELETED", "n1", {})  # already untainted
    assert taints.requests == 2
    node("ADDED", "n2", TAINT)
    node("DELETED", "n2", TAINT)  # a tainted node gone
    assert taints.requests == 4


def test_pressure_coming_refreshing_and_going_requests_each_time(taints):
    reserve("ADDED", "n1", UNDER_PRESSURE)
    assert taints.requests == 1
    reserve("MODIFIED", "n1", UNDER_PRESSURE)  # same report: nothing new
    assert taints.requests == 1
    refreshed = {**UNDER_PRESSURE, "lastUpdateTime": "2026-12-07T04:00:15Z"}
    reserve("MODIFIED", "n1", refreshed)  # a heartbeat under pressure: the plan's recheck
    assert taints.requests == 2
    reserve("MODIFIED", "n1", CALM_STATUS)
    assert taints.requests == 3
    reserve("ADDED", "n2", UNDER_PRESSURE)
    reserve("DELETED", "n2", UNDER_PRESSURE)
    reserve("DELETED", "n3", CALM_STATUS)  # a calm reserve gone
    assert taints.requests == 5
