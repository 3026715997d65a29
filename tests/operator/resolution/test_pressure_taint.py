"""Which nodes carry oomguard.io/memory-pressure:NoSchedule: every kind of report, on plain
data."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from oomguard.operator.resolution.pressure_taint import (
    ReservePressure,
    TaintRules,
    TaintWhy,
    has_taint,
    plan_taints,
    reserve_pressure,
    why,
    with_taint,
)

NOW = datetime(2026, 12, 6, 7, 0, 0, tzinfo=UTC)
RULES = TaintRules(enabled=True, heartbeat_seconds=180, max_age_seconds=600)
OURS = {"key": "oomguard.io/memory-pressure", "effect": "NoSchedule"}


def ago(seconds):
    return NOW - timedelta(seconds=seconds)


def status(pressure, since=10, heartbeat=5):
    return {
        "lastUpdateTime": ago(heartbeat).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "conditions": [
            {"type": "Enforcing", "status": "True"},
            {
                "type": "MemoryPressure",
                "status": "True" if pressure else "False",
                "lastTransitionTime": ago(since).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        ],
    }


def test_reading_a_status():
    assert reserve_pressure(status(True)) == ReservePressure(True, ago(10), ago(5))
    assert reserve_pressure(status(False)).pressure is False
    assert reserve_pressure({}) == ReservePressure(False, None, None)  # an older agent
    assert reserve_pressure(None) == ReservePressure(False, None, None)
    junk = {"lastUpdateTime": "yesterday", "conditions": [{"type": "MemoryPressure"}]}
    assert reserve_pressure(junk) == ReservePressure(False, None, None)


# every combination of what a report can say, against the rule written as a table
SINCE = (None, 10, 599, 601)
HEARTBEAT = (None, 0, 179, 181)


@pytest.mark.parametrize(
    ("enabled", "present", "pressure", "since", "heartbeat"),
    list(itertools.product((True, False), (True, False), (True, False), SINCE, HEARTBEAT)),
)
def test_why(enabled, present, pressure, since, heartbeat):
    report = (
        ReservePressure(
            pressure,
            ago(since) if since is not None else None,
            ago(heartbeat) if heartbeat is not None else None,
        )
        if present
        else None
    )
    rules = TaintRules(enabled, RULES.heartbeat_seconds, RULES.max_age_seconds)
    expected = (
        TaintWhy.DISABLED
        if not enabled
        else TaintWhy.NO_RESERVE
        if not present
        else TaintWhy.NO_PRESSURE
        if not pressure
        else TaintWhy.AGENT_SILENT
        if heartbeat is None or heartbeat > 180
        else TaintWhy.TOO_OLD
        if since is None or since > 600
        else TaintWhy.PRESSURE
    )
    assert why(report, NOW, rules) is expected


def test_plan_adds_keeps_and_removes():
    pressures = {
        "storm": ReservePressure(True, ago(10), ago(5)),  # not tainted yet: add
        "still": ReservePressure(True, ago(100), ago(50)),  # tainted: keep
        "calm": ReservePressure(False, ago(5), ago(5)),  # tainted: remove
        "silent": ReservePressure(True, ago(100), ago(200)),  # tainted: remove
        "quiet": ReservePressure(False, None, ago(1)),  # untainted: nothing
    }
    tainted = {"still", "calm", "silent", "gone"}  # "gone": its reserve was deleted
    plan = plan_taints(tainted, pressures, NOW, RULES)
    assert plan.add == ("storm",)
    assert plan.remove == (
        ("calm", TaintWhy.NO_PRESSURE),
        ("gone", TaintWhy.NO_RESERVE),
        ("silent", TaintWhy.AGENT_SILENT),
    )
    # "still" goes silent at ago(50) + 180 s, before its episode is 600 s old
    assert plan.recheck_at == ago(50) + timedelta(seconds=180)


def test_recheck_at_the_max_age_when_that_comes_first():
    pressures = {"a": ReservePressure(True, ago(590), ago(1))}
    assert plan_taints(set(), pressures, NOW, RULES).recheck_at == ago(590) + timedelta(seconds=600)
    assert plan_taints(set(), {}, NOW, RULES).recheck_at is None


def test_turned_off_removes_every_taint_and_adds_none():
    off = TaintRules(enabled=False)
    pressures = {"a": ReservePressure(True, ago(1), ago(1))}
    plan = plan_taints({"b"}, pressures, NOW, off)
    assert (plan.add, plan.remove) == ((), (("b", TaintWhy.DISABLED),))


def test_taint_list_edits_keep_other_taints():
    other = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    same_key_other_effect = {"key": OURS["key"], "effect": "NoExecute"}
    added = with_taint([other, same_key_other_effect], True, NOW)
    assert added == [other, same_key_other_effect, {**OURS, "timeAdded": "2026-12-06T07:00:00Z"}]
    assert has_taint(added) and not has_taint([other, same_key_other_effect])
    # already there: kept as it was (its timeAdded says when the episode began)
    old = {**OURS, "timeAdded": "2026-12-06T06:00:00Z"}
    assert with_taint([old, other], True, NOW) == [other, old]
    assert with_taint([other, old], False, NOW) == [other]
    assert with_taint(None, False, NOW) == []
    assert not has_taint(None)
