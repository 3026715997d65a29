"""The one process-guard assembly (guard -- CMD, guard --cgroup, sidecar) on a plain-file
cgroup: the defaults every process guard shares, and the loop's life from start to finish."""

from monitor_fakes import write_fake_cgroup

from oomguard.monitor.feedback.metrics_registry import GuardMetrics
from oomguard.monitor.modes.process_guard import ProcessGuard, events_or_empty, guard_settings
from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.monitor.triggers.kinds.event import EVENT
from oomguard.monitor.triggers.kinds.threshold import THRESHOLD

MiB = 2**20


def test_settings_defaults_are_written_once():
    settings = guard_settings(200 * MiB, None, None, 2.0, False)
    assert settings.buffer == 10 * MiB  # 5% of memory.high
    assert settings.in_flight_timeout == 4.0  # grace + 2 s
    assert guard_settings(200 * MiB, None, 3 * MiB, 2.0, False).buffer == 3 * MiB


def test_a_guard_that_writes_no_memory_high_runs_only_the_threshold_monitor():
    """The sidecar that only watches and ``guard --no-memory-high``: every monitor is asked
    for, and the event monitor drops out because there is no line to cross."""
    settings = guard_settings(200 * MiB, None, None, 1.0, False, set_memory_high=False)
    assert settings.memory_high_to_write is None
    assert not settings.monitors.get(EVENT) and settings.monitors.get(THRESHOLD) is not None


def test_a_guard_that_writes_memory_high_runs_the_event_monitor():
    settings = guard_settings(200 * MiB, None, None, 1.0, False)
    assert settings.memory_high_to_write == 200 * MiB
    assert settings.monitors.get(EVENT) is not None


def test_the_loop_runs_its_monitors_until_finished(fake_cgroup):
    metrics = GuardMetrics("guard", fake_cgroup)
    stop = StopSignal()
    settings = guard_settings(200 * MiB, None, None, 0.1, False)
    running = ProcessGuard(fake_cgroup, settings, metrics, stop, lambda record: None)
    running.start()
    try:
        assert running.thread.is_alive()
    finally:
        running.finish()
        stop.close()
    assert not running.thread.is_alive()
    assert stop.is_set()
    assert running.guard.errors == []
    up = metrics.registry.get_sample_value("oomguard_monitor_up", {"monitor": "event"})
    assert up == 0  # it ran, and stopped with the loop
    assert events_or_empty(fake_cgroup)["high"] == 0


def test_usage_is_measured_where_asked_and_victims_come_from_the_guarded_cgroup(tmp_path):
    """The sidecar measures the whole workload container (a worker's first allocations stay
    charged to the main leaf) but stops only processes of the workers leaf."""
    workload = write_fake_cgroup(tmp_path / "app")
    workers = write_fake_cgroup(tmp_path / "app" / "oomguard-workers")
    workload.file("memory.current").write_text(f"{300 * MiB}\n")  # over the line
    workers.file("memory.current").write_text(f"{50 * MiB}\n")  # under it
    settings = guard_settings(200 * MiB, None, None, 0.1, True)
    metrics = GuardMetrics("sidecar", workers)
    running = ProcessGuard(workers, settings, metrics, StopSignal(), print, measured=workload)
    decision = running.guard.step(0.0, "threshold")
    assert decision is not None
    assert decision.amount_to_free > 80 * MiB  # the workload's 300 MiB less inactive file
    alone = ProcessGuard(workers, settings, metrics, StopSignal(), print)
    measured_alone = alone.guard.step(0.0, "threshold")
    assert measured_alone is not None
    assert measured_alone.amount_to_free == 0  # the workers leaf alone is under the line
