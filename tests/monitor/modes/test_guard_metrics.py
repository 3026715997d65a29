"""The guard's metrics wiring: decisions from the loop, monitors tracked, kills counted, and
`oomguard guard --metrics-port` serving /metrics (the server part; the kernel part runs in
the VM tests)."""

import argparse
import socket
import threading
import time
import urllib.request

import pytest
from monitor_fakes import FakeCgroup, FakeTarget, free_port

from oomguard.monitor.actions.process_target import KillRecord
from oomguard.monitor.decision.candidate import Candidate
from oomguard.monitor.feedback.metrics_endpoint import MetricsEndpointError, metrics_endpoint
from oomguard.monitor.feedback.metrics_registry import GuardMetrics
from oomguard.monitor.modes import guard_command
from oomguard.monitor.modes.guard import RECHECK, Guard, GuardSettings
from oomguard.monitor.triggers.stop_signal import StopSignal
from oomguard.monitor.triggers.trigger import Trigger, TriggerKind

MiB = 2**20
SETTINGS = GuardSettings(
    memory_high=200 * MiB, memory_max=None, buffer=10 * MiB, grace=1.0, in_flight_timeout=3.0
)


class OneTrigger:
    name = "event"

    def __init__(self, trigger):
        self.trigger = trigger

    def run(self, sink, stop):
        sink(self.trigger)
        stop.wait()


def value(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, labels)


def test_guard_loop_records_decisions_and_monitor_health():
    cgroup = FakeCgroup(260 * MiB)
    procs = [Candidate(str(i), f"w{i}", float(i), 40 * MiB) for i in range(6)]
    metrics = GuardMetrics("guard")
    trigger = Trigger(TriggerKind.EVENT, detected_at=time.monotonic())
    monitors = metrics.tracked([OneTrigger(trigger)])
    guard = Guard(cgroup, FakeTarget(cgroup, procs), monitors, SETTINGS, metrics=metrics)
    stop = StopSignal()
    thread = threading.Thread(target=guard.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not value(metrics, "oomguard_decisions_total", trigger="event"):
            assert time.monotonic() < deadline, "no decision recorded"
            time.sleep(0.01)
        assert value(metrics, "oomguard_monitor_up", monitor="event") == 1
    finally:
        stop.set()
        thread.join(30)
    # 260Mi over a 200Mi target with a 10Mi buffer: 70Mi to free -> two 40Mi workers
    assert value(metrics, "oomguard_victims_total") == 2
    assert value(metrics, "oomguard_detection_latency_seconds_count", trigger="event") == 1
    assert value(metrics, "oomguard_monitor_up", monitor="event") == 0
    # a decision from the loop's own re-check counts, without a detection latency
    cgroup.usage = 300 * MiB
    guard.step(detected_at=time.monotonic(), trigger_kind=RECHECK)
    assert value(metrics, "oomguard_decisions_total", trigger="recheck") == 1
    assert value(metrics, "oomguard_detection_latency_seconds_count", trigger="recheck") is None


def test_guard_kill_records_are_logged_and_counted(caplog):
    metrics = GuardMetrics("guard")
    record = KillRecord(
        pid=42,
        cmdline=("worker",),
        started_at=5.0,
        memory_bytes=64 * MiB,
        signal="SIGTERM",
        detected_at=1.0,
        signalled_at=1.001,
        exited_at=1.051,
        outcome="exited",
    )
    guard_command._recorder(metrics)(record)
    assert value(metrics, "oomguard_actions_total", outcome="killed") == 1
    assert value(metrics, "oomguard_freed_bytes_total") == 64 * MiB
    assert value(metrics, "oomguard_decision_to_action_seconds_count") == 1
    assert "victim exited" in caplog.text


def test_metrics_port_option():
    parser = argparse.ArgumentParser()
    guard_command.configure(parser)
    args = parser.parse_args(["--memory-high", "1Gi", "--", "true"])
    assert (args.metrics_port, args.metrics_host) == (0, "127.0.0.1")
    args = parser.parse_args(
        ["--memory-high", "1Gi", "--metrics-port", "9101", "--metrics-host", "0.0.0.0", "--", "x"]
    )
    assert (args.metrics_port, args.metrics_host) == (9101, "0.0.0.0")


def test_metrics_endpoint_serves_while_guarding_and_stops_after():
    metrics = GuardMetrics("guard")
    port = free_port()
    with metrics_endpoint(metrics, "127.0.0.1", port) as http:
        assert http is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            assert b'mode="guard"' in response.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as response:
            assert response.read() == b"ok\n"
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_metrics_endpoint_off_by_default_and_a_taken_port_is_a_clear_error():
    metrics = GuardMetrics("guard")
    with metrics_endpoint(metrics, "127.0.0.1", 0) as http:
        assert http is None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            pytest.raises(MetricsEndpointError, match=f"127.0.0.1:{port}"),
            metrics_endpoint(metrics, "127.0.0.1", port),
        ):
            pass


def test_guard_times_an_episode_until_usage_is_back_and_the_victims_gone():
    cgroup = FakeCgroup(260 * MiB)
    procs = [Candidate(str(i), f"w{i}", float(i), 40 * MiB) for i in range(6)]
    metrics = GuardMetrics("guard")
    now = [50.0]
    guard = Guard(
        cgroup, FakeTarget(cgroup, procs), [], SETTINGS, clock=lambda: now[0], metrics=metrics
    )
    guard.step(detected_at=49.75, trigger_kind="event")  # two stopped; FakeTarget removes them
    assert value(metrics, "oomguard_episode_duration_seconds_count") == 0
    now[0] = 50.5
    guard.step(detected_at=50.5, trigger_kind=RECHECK)  # under target, nobody exiting
    assert value(metrics, "oomguard_episode_duration_seconds_count") == 1
    assert value(metrics, "oomguard_episode_duration_seconds_sum") == 0.75
    now[0] = 51.0
    guard.step(detected_at=51.0, trigger_kind=RECHECK)
    assert value(metrics, "oomguard_episode_duration_seconds_count") == 1
