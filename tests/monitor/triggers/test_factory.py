import queue
import threading
import time

import pytest
from monitor_fakes import monitor_config, wait_for
from monitor_threads import blocked_in_poll

from oomguard.monitor.kernel.memory_pressure import PsiTrigger
from oomguard.monitor.triggers.event_monitor import EventMonitor
from oomguard.monitor.triggers.factory import (
    MonitorFailure,
    MonitorRunner,
    ThresholdConfig,
    UsageScope,
    build_monitors,
)
from oomguard.monitor.triggers.pressure_monitor import PressureMonitor
from oomguard.monitor.triggers.threshold_monitor import (
    CgroupWorkingSet,
    HostMemoryUsed,
    ThresholdMonitor,
)
from oomguard.monitor.triggers.trigger import MonitorError, Trigger, TriggerKind


def test_builds_what_the_config_asks_for(fake_cgroup):
    config = monitor_config(
        event=True,
        threshold=ThresholdConfig(1 << 30, 0.25, UsageScope.HOST),
        pressure=PsiTrigger(50_000, 1_000_000),
    )
    event, threshold, pressure = build_monitors(fake_cgroup, config)
    assert isinstance(event, EventMonitor) and event.cgroup == fake_cgroup
    assert isinstance(threshold, ThresholdMonitor)
    assert isinstance(threshold.source, HostMemoryUsed)
    assert (threshold.limit_bytes, threshold.interval) == (1 << 30, 0.25)
    assert isinstance(pressure, PressureMonitor)
    only_threshold = build_monitors(fake_cgroup, monitor_config(False, ThresholdConfig(1)))
    assert [type(m) for m in only_threshold] == [ThresholdMonitor]
    assert isinstance(only_threshold[0].source, CgroupWorkingSet)


def test_no_monitor_is_refused(fake_cgroup):
    with pytest.raises(ValueError, match="no monitor enabled"):
        build_monitors(fake_cgroup, monitor_config(event=False))


class Ticker:
    """Triggers every 10 ms until stopped."""

    name = "ticker"

    def run(self, sink, stop):
        while not stop.wait(0.01):
            sink(Trigger(TriggerKind.THRESHOLD, time.monotonic()))


class Broken:
    name = "broken"

    def run(self, sink, stop):
        raise MonitorError("cgroup /x is gone")


class Quitter:
    name = "quitter"

    def run(self, sink, stop):
        return


def test_runner_forwards_triggers_and_surfaces_failures_without_stopping_others():
    got = []

    def failures():
        return {item.monitor: item.error for item in got if isinstance(item, MonitorFailure)}

    with MonitorRunner([Ticker(), Broken(), Quitter()]) as runner:
        # until both failures arrived and the ticker kept going: the threads start in any
        # order, so the first items may all be the ticker's
        while not (
            failures().keys() >= {"broken", "quitter"}
            and sum(isinstance(item, Trigger) for item in got) >= 6
        ):
            got.append(runner.output.get(timeout=60))
    failures = failures()
    assert str(failures["broken"]) == "cgroup /x is gone"
    assert "returned without being stopped" in str(failures["quitter"])
    assert sum(isinstance(item, Trigger) for item in got) >= 6


def test_runner_stops_real_monitors(fake_cgroup):
    """The event and pressure monitors poll with no timeout: they end only if woken."""
    config = monitor_config(
        event=True,
        threshold=ThresholdConfig(1 << 40, 0.05),
        pressure=PsiTrigger(50_000, 1_000_000),
    )
    sink = queue.Queue()
    runner = MonitorRunner(build_monitors(fake_cgroup, config), sink)
    before = set(threading.enumerate())
    runner.start()
    started = set(threading.enumerate()) - before
    polling = {t for t in started if t.name in ("monitor-event", "monitor-pressure")}
    assert len(polling) == 2
    assert wait_for(lambda: all(blocked_in_poll(t) for t in polling))
    assert runner.stop(30) == []
    assert sink.empty()
    assert runner.stop() == []  # idempotent


def test_runner_reports_monitors_that_ignore_stop():
    release = threading.Event()

    class Stubborn:
        name = "stubborn"

        def run(self, sink, stop):
            release.wait(60)  # ignores ``stop`` until the test lets it go

    runner = MonitorRunner([Stubborn()])
    runner.start()
    try:
        assert runner.stop(timeout=0.1) == ["stubborn"]
    finally:
        release.set()
    assert runner.stop(timeout=60) == []


def test_a_start_cut_short_by_a_signal_leaves_the_runner_stoppable(monkeypatch):
    """A termination signal can raise inside ``Thread.start``; stopping must still work."""

    class Interrupted(BaseException):
        pass

    real_start = threading.Thread.start

    def start(thread):
        if thread.name == "monitor-quitter":
            raise Interrupted
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    runner = MonitorRunner([Ticker(), Quitter()])
    with pytest.raises(Interrupted):
        runner.start()
    assert runner.stop(30) == []  # joined the ticker; the never-started thread is not joined
