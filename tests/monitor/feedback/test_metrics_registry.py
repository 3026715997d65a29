"""GuardMetrics: the event-driven metrics the guard loop and the node agent record."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from oomguard import __version__
from oomguard.monitor.actions.process_target import KillRecord
from oomguard.monitor.feedback.metrics_registry import (
    ActionOutcome,
    GuardMetrics,
    MonitorName,
    decision_trigger,
)
from oomguard.monitor.triggers.stop_signal import StopSignal
from oomguard.monitor.triggers.trigger import MonitorError, Trigger, TriggerKind


def sample(metrics: GuardMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_build_info_carries_version_mode_and_kernel() -> None:
    metrics = GuardMetrics("node", kernel_release="6.1.0-test")
    labels = {"version": __version__, "mode": "node", "kernel": "6.1.0-test"}
    assert sample(metrics, "oomguard_build_info", **labels) == 1


def test_every_labelled_series_exists_from_the_start_at_zero() -> None:
    metrics = GuardMetrics("guard")
    for kind in TriggerKind:
        assert sample(metrics, "oomguard_decisions_total", trigger=kind.value) == 0
        assert sample(metrics, "oomguard_detection_latency_seconds_count", trigger=kind.value) == 0
    assert sample(metrics, "oomguard_decisions_total", trigger="recheck") == 0
    for outcome in ActionOutcome:
        assert sample(metrics, "oomguard_actions_total", outcome=outcome.value) == 0
    assert sample(metrics, "oomguard_victims_total") == 0
    assert sample(metrics, "oomguard_freed_bytes_total") == 0
    assert sample(metrics, "oomguard_decision_to_action_seconds_count") == 0


def test_record_decision_counts_by_trigger_and_observes_latency() -> None:
    metrics = GuardMetrics("guard")
    trigger = Trigger(TriggerKind.PRESSURE, detected_at=100.0)
    metrics.record_decision(trigger, victims=3, decided_at=100.004)
    metrics.record_decision(Trigger(TriggerKind.EVENT, detected_at=5.0), victims=0)
    assert sample(metrics, "oomguard_decisions_total", trigger="pressure") == 1
    assert sample(metrics, "oomguard_decisions_total", trigger="event") == 1
    assert sample(metrics, "oomguard_victims_total") == 3
    count = "oomguard_detection_latency_seconds_count"
    assert sample(metrics, count, trigger="pressure") == 1
    assert sample(metrics, count, trigger="event") == 0  # no decided_at, no sample
    bucket = "oomguard_detection_latency_seconds_bucket"
    assert sample(metrics, bucket, trigger="pressure", le="0.0025") == 0
    assert sample(metrics, bucket, trigger="pressure", le="0.005") == 1


def test_record_decision_by_kind_and_recheck() -> None:
    metrics = GuardMetrics("guard")
    metrics.record_decision("threshold", 1, detected_at=1.0, decided_at=1.2)
    metrics.record_decision(TriggerKind.EVENT, 2, detected_at=1.0, decided_at=1.001)
    metrics.record_decision("recheck", 1, detected_at=2.0, decided_at=2.5)
    assert sample(metrics, "oomguard_decisions_total", trigger="threshold") == 1
    assert sample(metrics, "oomguard_decisions_total", trigger="event") == 1
    assert sample(metrics, "oomguard_decisions_total", trigger="recheck") == 1
    assert sample(metrics, "oomguard_victims_total") == 4
    count = "oomguard_detection_latency_seconds_count"
    assert sample(metrics, count, trigger="threshold") == 1
    assert sample(metrics, count, trigger="event") == 1
    assert sample(metrics, count, trigger="recheck") is None  # a re-check detects nothing


def test_record_kill_takes_a_process_target_record() -> None:
    metrics = GuardMetrics("guard")
    common = dict(pid=7, cmdline=("w",), started_at=1.0, memory_bytes=4096, detected_at=10.0)
    metrics.record_kill(
        KillRecord(
            signal="SIGTERM", signalled_at=10.01, exited_at=10.21, outcome="exited", **common
        )
    )
    metrics.record_kill(
        KillRecord(signal="SIGKILL", signalled_at=10.01, exited_at=None, outcome="stuck", **common)
    )
    metrics.record_kill(
        KillRecord(signal=None, signalled_at=None, exited_at=None, outcome="already-gone", **common)
    )
    assert sample(metrics, "oomguard_actions_total", outcome="killed") == 1
    assert sample(metrics, "oomguard_actions_total", outcome="failed") == 1
    assert sample(metrics, "oomguard_actions_total", outcome="gone") == 1
    assert sample(metrics, "oomguard_freed_bytes_total") == 4096
    assert sample(metrics, "oomguard_decision_to_action_seconds_count") == 1
    assert sample(metrics, "oomguard_decision_to_action_seconds_sum") == pytest.approx(0.2)


def test_record_action_counts_outcomes_and_bytes_freed_only_when_memory_was_freed() -> None:
    metrics = GuardMetrics("node")
    metrics.record_action(ActionOutcome.EVICTED, bytes_freed=1000, latency_seconds=0.2)
    metrics.record_action("killed", bytes_freed=24, latency_seconds=0.01)
    metrics.record_action("pdb_blocked", bytes_freed=5000, latency_seconds=0.03)
    metrics.record_action("failed", bytes_freed=7)
    assert sample(metrics, "oomguard_actions_total", outcome="evicted") == 1
    assert sample(metrics, "oomguard_actions_total", outcome="killed") == 1
    assert sample(metrics, "oomguard_actions_total", outcome="pdb_blocked") == 1
    assert sample(metrics, "oomguard_actions_total", outcome="failed") == 1
    assert sample(metrics, "oomguard_freed_bytes_total") == 1024
    assert sample(metrics, "oomguard_decision_to_action_seconds_count") == 3
    assert sample(metrics, "oomguard_decision_to_action_seconds_sum") == pytest.approx(0.24)


def test_unknown_outcome_or_trigger_is_logged_not_counted_so_label_values_stay_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = GuardMetrics("node")

    def own_series() -> list[str]:
        # process_* (CPU seconds, RSS) move on their own between two scrapes
        return [
            line for line in metrics.exposition().decode().splitlines() if "process_" not in line
        ]

    before = own_series()
    metrics.record_action("pod-abc123", bytes_freed=5)  # never raises inside the loop
    metrics.record_decision("event+threshold", 1)
    assert own_series() == before
    assert "pod-abc123" in caplog.text and "event+threshold" in caplog.text
    metrics.record_action("evicted", bytes_freed=-1)
    assert sample(metrics, "oomguard_freed_bytes_total") == 0
    with pytest.raises(ValueError):
        metrics.set_monitor_up("my-monitor", True)


def test_every_outcome_the_action_modules_define_has_a_label() -> None:
    """Catches a new action Outcome (pods' and processes' alike) before it goes uncounted."""
    from oomguard.monitor.actions.outcome import Outcome

    for outcome in Outcome:
        ActionOutcome.of(outcome.value)


def test_every_trigger_spelling_the_loops_use_has_a_label() -> None:
    from oomguard.monitor.modes import guard, node_agent

    decision_trigger(node_agent.TICK)
    decision_trigger(guard.RECHECK)
    for kind in TriggerKind:
        decision_trigger(kind.value)


def test_monitor_up_only_for_monitors_in_use() -> None:
    metrics = GuardMetrics("guard")
    assert sample(metrics, "oomguard_monitor_up", monitor="event") is None
    metrics.set_monitor_up(MonitorName.EVENT, True)
    metrics.set_monitor_up("threshold", True)
    metrics.set_monitor_up("threshold", False)
    assert sample(metrics, "oomguard_monitor_up", monitor="event") == 1
    assert sample(metrics, "oomguard_monitor_up", monitor="threshold") == 0
    assert sample(metrics, "oomguard_monitor_up", monitor="pressure") is None


def test_registries_are_isolated() -> None:
    one, two = GuardMetrics("guard"), GuardMetrics("guard")
    one.record_action("killed", bytes_freed=1)
    assert sample(one, "oomguard_actions_total", outcome="killed") == 1
    assert sample(two, "oomguard_actions_total", outcome="killed") == 0


def test_watch_cgroup_switches_what_the_collector_reads(tmp_path: Path) -> None:
    metrics = GuardMetrics("guard")
    assert sample(metrics, "oomguard_memory_usage_bytes") is None
    (tmp_path / "memory.current").write_text("4096\n")
    metrics.watch_cgroup(tmp_path)
    assert sample(metrics, "oomguard_memory_usage_bytes") == 4096
    metrics.watch_cgroup(None)
    assert sample(metrics, "oomguard_memory_usage_bytes") is None


def test_exposition_follows_naming_conventions() -> None:
    """One prefix, base units, counters end in _total, no *_created noise series."""
    metrics = GuardMetrics("guard")
    text = metrics.exposition().decode()
    families = list(text_string_to_metric_families(text))
    ours = [f for f in families if not f.name.startswith(("process_", "python_"))]
    assert ours
    for family in ours:
        assert family.name.startswith("oomguard_"), family.name
        assert not re.search(r"_(ms|milliseconds|kb|mb|kib|mib|percent)(_|$)", family.name)
        for s in family.samples:
            assert not s.name.endswith("_created"), s.name
            if family.type == "counter":
                assert s.name.endswith("_total"), s.name
            if family.type == "histogram":
                assert s.name.startswith(family.name), s.name
    assert "# TYPE oomguard_build_info gauge" in text
    assert "# TYPE oomguard_detection_latency_seconds histogram" in text


@pytest.mark.parametrize(
    ("spelling", "label"),
    [
        ("blocked-by-pdb", "pdb_blocked"),
        ("already-gone", "gone"),
        ("cgroup-killed", "killed"),
        ("api-unreachable", "failed"),
        ("rate-limited", "rate_limited"),
        ("dry-run", "dry_run"),
        ("exited", "killed"),
        ("stuck", "failed"),
        ("evicted", "evicted"),
    ],
)
def test_action_modules_outcome_spellings_map_to_labels(spelling: str, label: str) -> None:
    metrics = GuardMetrics("node")
    metrics.record_action(spelling, bytes_freed=10)
    assert sample(metrics, "oomguard_actions_total", outcome=label) == 1
    freed = 10 if label in ("evicted", "killed") else 0
    assert sample(metrics, "oomguard_freed_bytes_total") == freed


@pytest.mark.parametrize(
    ("kinds", "label"),
    [
        ("event", "event"),
        ("threshold", "threshold"),
        ("pressure", "pressure"),
        ("recheck", "recheck"),
        ("timer", "recheck"),
        ("threshold,timer", "threshold"),
        ("event,threshold", "event"),
        ("pressure,threshold", "pressure"),
        ("event,pressure,threshold", "event"),
    ],
)
def test_loop_trigger_spellings(kinds: str, label: str) -> None:
    assert decision_trigger(kinds).value == label
    metrics = GuardMetrics("node")
    metrics.record_decision(kinds, 1)
    assert sample(metrics, "oomguard_decisions_total", trigger=label) == 1


@pytest.mark.parametrize("junk", ["", ",", "poll", "event,poll"])
def test_unknown_trigger_spellings_are_refused(junk: str) -> None:
    with pytest.raises(ValueError):
        decision_trigger(junk)


class FakeMonitor:
    def __init__(self, name: str, fail: bool = False) -> None:
        self.name = name
        self.fail = fail
        self.seen_up: float | None = None
        self.metrics: GuardMetrics | None = None

    def run(self, sink, stop) -> None:
        assert self.metrics is not None
        self.seen_up = sample(self.metrics, "oomguard_monitor_up", monitor=self.name)
        sink(Trigger(TriggerKind.EVENT, 1.0))
        if self.fail:
            raise MonitorError("cgroup removed")


def test_tracked_monitors_report_up_while_running_and_down_after() -> None:
    metrics = GuardMetrics("guard")
    event, threshold, odd = (
        FakeMonitor("event"),
        FakeMonitor("threshold", fail=True),
        FakeMonitor("x"),
    )
    for m in (event, threshold, odd):
        m.metrics = metrics
    tracked = metrics.tracked([event, threshold, odd])
    assert [t.name for t in tracked] == ["event", "threshold", "x"]
    got: list[Trigger] = []
    stop = StopSignal()
    try:
        tracked[0].run(got.append, stop)
        with pytest.raises(MonitorError):
            tracked[1].run(got.append, stop)
        tracked[2].run(got.append, stop)  # unknown name: runs, no series, no error
    finally:
        stop.close()
    assert len(got) == 3
    assert event.seen_up == 1 and threshold.seen_up == 1
    assert sample(metrics, "oomguard_monitor_up", monitor="event") == 0
    assert sample(metrics, "oomguard_monitor_up", monitor="threshold") == 0
    assert tracked[1].fail is True  # other attributes pass through


def test_process_metrics_show_what_the_guard_costs() -> None:
    metrics = GuardMetrics("guard")
    assert (sample(metrics, "process_resident_memory_bytes") or 0) > 0
    assert sample(metrics, "process_cpu_seconds_total") is not None
