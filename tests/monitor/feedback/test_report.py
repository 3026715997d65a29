import json

import pytest

from oomguard.monitor.actions.process_target import KillRecord
from oomguard.monitor.feedback.report import (
    DecisionRecord,
    GuardReport,
    report_to_json,
    summarize,
    write_report,
)


def make_report(**kw):
    victim = KillRecord(
        pid=42,
        cmdline=("python3", "w.py", "5"),
        started_at=12.5,
        memory_bytes=80 << 20,
        signal="SIGTERM",
        detected_at=101.0,
        signalled_at=101.01,
        exited_at=101.05,
        outcome="exited",
    )
    decision = DecisionRecord("event", 101.0, 101.002, "victims", 50 << 20, 260 << 20, (42,), "r")
    base = dict(
        command=("python3", "pool.py"),
        cgroup="/sys/fs/cgroup/oomguard-1",
        memory_high=200 << 20,
        memory_max=300 << 20,
        buffer=10 << 20,
        grace=1.0,
        dry_run=False,
        exit_status=0,
        started_at=100.0,
        victims=[victim],
        decisions=[decision],
        memory_events_start={"high": 0, "oom_kill": 0},
        memory_events_final={"high": 9, "oom_kill": 0},
    )
    base.update(kw)
    return GuardReport(**base)


def test_report_json_has_victims_events_and_latencies():
    data = report_to_json(make_report())
    [v] = data["victims"]
    assert v["pid"] == 42 and v["cmdline"] == ["python3", "w.py", "5"]
    assert v["signal"] == "SIGTERM" and v["memory_bytes"] == 80 << 20
    assert v["start_time_seconds_after_boot"] == 12.5
    assert v["detected_at_seconds"] == pytest.approx(1.0)
    assert v["detection_to_signal_seconds"] == pytest.approx(0.01)
    assert v["detection_to_exit_seconds"] == pytest.approx(0.05)
    assert data["memory_events"]["final"]["oom_kill"] == 0
    lat = data["latencies_seconds"]
    assert lat["detection_to_decision"]["count"] == 1
    assert lat["detection_to_decision"]["max"] == pytest.approx(0.002)
    assert data["exit_status"] == 0
    assert data["started_at_monotonic_seconds"] == 100.0  # the zero of the relative times
    assert data["settings"]["memory_max_bytes"] == 300 << 20


def test_empty_report_has_null_latencies():
    data = report_to_json(make_report(victims=[], decisions=[], command=None, exit_status=None))
    assert data["victims"] == [] and data["command"] is None
    assert all(v is None for v in data["latencies_seconds"].values())


def test_summarize():
    assert summarize([]) is None
    s = summarize([3.0, 1.0, 2.0])
    assert s == {"count": 3, "min": 1.0, "median": 2.0, "p95": 3.0, "max": 3.0}
    s = summarize(float(x) for x in range(1, 101))
    assert s["p95"] == 95.0


def test_write_report_is_atomic_and_valid_json(tmp_path):
    path = tmp_path / "r.json"
    write_report(path, make_report())
    assert json.loads(path.read_text())["victims"][0]["pid"] == 42
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_a_traced_decision_says_where_detection_to_signal_went():
    traced = DecisionRecord(
        "event",
        101.0,
        101.030,
        "victims",
        1,
        2,
        (42,),
        "r",
        step_started_at=101.020,
        measured_at=101.028,
        signalled_at=101.031,
    )
    [d] = report_to_json(make_report(decisions=[traced]))["decisions"]
    assert d["trace_seconds"] == pytest.approx(
        {"wait": 0.020, "measure": 0.008, "decide": 0.002, "signal": 0.001}
    )
    [untraced] = report_to_json(make_report())["decisions"]
    assert untraced["trace_seconds"] is None
