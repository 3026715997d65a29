"""The monitors on the real kernel: real memory.events rises, PSI triggers, cgroup removal.

Stopping: the event and pressure monitors block in ``poll()`` with no timeout, so a monitor
whose thread ends after ``stop`` was woken by the StopSignal (without it, it would block
forever). The tests check that and print how long it took (3-20 ms in the VM here). One
wall-clock bound stays, because the core guard's acceptance names it: the event monitor
on a real cgroup stops within 1 s.

Start-up: a monitor is armed once it blocks in ``poll()`` (baseline read, PSI trigger
written); each test waits for that (``Running.wait_armed``) before it makes memory move, so
a slow start can never turn the first rise into the baseline.
"""

import subprocess
import sys
import textwrap
import time

import pytest
from monitor_fakes import monitor_config
from monitor_threads import ObservedCgroup, Running

from oomguard.monitor.kernel.memory_limit import MemoryLimit
from oomguard.monitor.kernel.memory_pressure import PsiTrigger
from oomguard.monitor.triggers.event_monitor import EventMonitor
from oomguard.monitor.triggers.factory import (
    MonitorFailure,
    MonitorRunner,
    ThresholdConfig,
    build_monitors,
)
from oomguard.monitor.triggers.pressure_monitor import PressureMonitor
from oomguard.monitor.triggers.threshold_monitor import CgroupWorkingSet, ThresholdMonitor
from oomguard.monitor.triggers.trigger import MonitorError, TriggerKind

pytestmark = pytest.mark.kernel


def test_event_monitor_wakes_on_a_real_high_increment(real_cgroup, spawn_hog):
    real_cgroup.set_memory_high(MemoryLimit(64 << 20))
    run = Running(EventMonitor(real_cgroup))
    run.wait_armed()
    assert run.triggers == []
    started = spawn_hog(real_cgroup, 200).started()
    assert run.wait_for(lambda: run.triggers)
    trigger = run.triggers[0]
    assert trigger.kind is TriggerKind.EVENT
    assert trigger.detail["high"] > 0
    assert trigger.detail["high_total"] >= trigger.detail["high"]
    print(f"first EVENT trigger {trigger.detected_at - started:.3f} s after allocation began")
    assert run.shutdown() < 1.0  # the acceptance bound; 3-20 ms measured here
    assert run.error is None
    assert real_cgroup.memory_events().oom_kill == 0


def test_a_non_zero_high_at_start_is_a_baseline(real_cgroup, spawn_hog):
    """A ``high`` count left from before the monitor started is never reported: the first
    trigger carries only the rise after the start, whenever the monitor got to run."""
    real_cgroup.set_memory_high(MemoryLimit(32 << 20))
    hog = spawn_hog(real_cgroup, 64, keep=False)
    hog.started()
    hog.touched()
    before = real_cgroup.memory_events().high
    assert before > 0
    observed = ObservedCgroup(real_cgroup.path)
    run = Running(EventMonitor(observed))
    run.wait_armed()
    baseline = observed.reads[0].high
    assert baseline >= before
    assert run.triggers == []  # the baseline itself triggered nothing
    later = spawn_hog(real_cgroup, 64, keep=False)
    later.started()
    assert run.wait_for(lambda: run.triggers)
    first = run.triggers[0].detail
    assert first["high_total"] - first["high"] == baseline, (first, baseline)
    run.shutdown()
    assert run.error is None


def test_a_short_burst_is_detected(real_cgroup, spawn_hog):
    """Sit below memory.high, go past it briefly, free everything: the monitor sees it."""
    real_cgroup.set_memory_high(MemoryLimit(64 << 20))
    run = Running(EventMonitor(real_cgroup))
    run.wait_armed()
    hog = spawn_hog(real_cgroup, 32, hold_s=30, keep=False, base_mib=36)
    started = hog.started()
    assert run.triggers == [], "went over memory.high before the burst"
    freed = hog.touched()
    assert run.wait_for(lambda: run.triggers)
    trigger = run.triggers[0]
    assert trigger.detail["high"] > 0
    assert trigger.detected_at >= started
    print(
        f"burst above memory.high: {(freed - started) * 1000:.0f} ms from its first page to "
        f"free; trigger {(trigger.detected_at - started) * 1000:.0f} ms after its first page"
    )
    assert real_cgroup.memory_current() < 64 << 20  # freed: the excursion is over
    run.shutdown()


def test_removing_the_cgroup_stops_each_monitor_with_a_clear_error(real_cgroup):
    monitors = [
        EventMonitor(real_cgroup),
        PressureMonitor.for_cgroup(real_cgroup, PsiTrigger(50_000, 1_000_000)),
    ]
    runs = [Running(m) for m in monitors]
    for run in runs:
        run.wait_armed()
    real_cgroup.remove()
    for run in runs:
        run.thread.join(10)
        assert not run.thread.is_alive(), "monitor did not notice the cgroup was removed"
        assert isinstance(run.error, MonitorError)
        print(run.error)
    assert "is gone" in str(runs[0].error)
    assert "cgroup is gone" in str(runs[1].error)
    threshold = ThresholdMonitor(CgroupWorkingSet(real_cgroup), 1)
    with pytest.raises(MonitorError, match="is gone"):
        threshold.poll_once(lambda t: None)


def test_psi_trigger_fires_under_pressure(real_cgroup, spawn_hog):
    real_cgroup.set_memory_high(MemoryLimit(64 << 20))
    run = Running(PressureMonitor.for_cgroup(real_cgroup, PsiTrigger(50_000, 1_000_000)))
    run.wait_armed()
    started = spawn_hog(real_cgroup, 200).started()
    assert run.wait_for(lambda: run.triggers)
    trigger = run.triggers[0]
    assert trigger.kind is TriggerKind.PRESSURE
    assert trigger.detail["stall_us"] == 50_000
    assert trigger.detail["some_total_us"] > 0
    print(f"PSI trigger {trigger.detected_at - started:.3f} s after allocation began")
    run.shutdown()
    assert run.error is None


def test_threshold_monitor_sees_real_usage(real_cgroup, spawn_hog):
    hog = spawn_hog(real_cgroup, 100)
    hog.started()
    hog.touched()
    triggers = []
    ThresholdMonitor(CgroupWorkingSet(real_cgroup), 50 << 20).poll_once(triggers.append)
    assert triggers and triggers[0].detail["usage"] >= 100 << 20


def test_runner_with_all_three_delivers_each_kind_and_stops(real_cgroup, spawn_hog):
    real_cgroup.set_memory_high(MemoryLimit(64 << 20))
    config = monitor_config(
        event=True,
        threshold=ThresholdConfig(48 << 20, 0.05),
        pressure=PsiTrigger(50_000, 1_000_000),
    )
    runner = MonitorRunner(build_monitors(real_cgroup, config))
    runner.start()
    try:
        spawn_hog(real_cgroup, 200)
        kinds = set()
        deadline = time.monotonic() + 300
        while kinds != set(TriggerKind) and time.monotonic() < deadline:
            item = runner.output.get(timeout=300)
            assert not isinstance(item, MonitorFailure), item
            kinds.add(item.kind)
    finally:
        started = time.monotonic()
        still_running = runner.stop(300)
    print(f"all three stopped {(time.monotonic() - started) * 1000:.1f} ms after the signal")
    assert still_running == []
    assert kinds == set(TriggerKind)


def test_unreadable_memory_events_is_a_clear_error(real_cgroup):
    """chmod 000 on the real file; the monitor runs as nobody (root bypasses modes)."""
    real_cgroup.file("memory.events").chmod(0)
    code = textwrap.dedent(f"""
        import os
        from oomguard.monitor.kernel.cgroupfs import Cgroup
        from oomguard.monitor.triggers.event_monitor import EventMonitor
        from oomguard.monitor.triggers.stop_signal import StopSignal
        from oomguard.monitor.triggers.trigger import MonitorError
        os.setuid(65534)
        try:
            EventMonitor(Cgroup({str(real_cgroup.path)!r})).run(print, StopSignal())
        except MonitorError as exc:
            print("MonitorError:", exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("MonitorError:")
    assert "Permission denied" in out.stdout
