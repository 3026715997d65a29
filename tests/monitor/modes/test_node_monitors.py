"""Which monitors the node agent runs for each combination of settings and kernel support."""

import itertools

import pytest
from monitor_fakes import monitor_config

from oomguard.monitor.kernel.memory_pressure import PsiTrigger
from oomguard.monitor.modes.node_monitors import node_monitor_plan
from oomguard.monitor.settings import (
    EventMonitorSettings,
    HostMemoryMonitorSettings,
    MonitorSettings,
    PressureMonitorSettings,
    SettingsError,
    ThresholdMonitorSettings,
)
from oomguard.monitor.triggers.factory import UsageScope
from oomguard.monitor.triggers.kinds.event import EVENT
from oomguard.monitor.triggers.kinds.host_memory import HOST_MEMORY
from oomguard.monitor.triggers.kinds.pressure import PRESSURE
from oomguard.monitor.triggers.kinds.threshold import THRESHOLD


def settings(event=True, threshold=True, pressure=False):
    return MonitorSettings(
        event=EventMonitorSettings(event),
        threshold=ThresholdMonitorSettings(threshold, usage_percent=90, interval_ms=250),
        pressure=PressureMonitorSettings(pressure, stall_ms=150, window_ms=2000),
    )


def test_defaults_on_a_new_kernel_follow_the_settings():
    plan = node_monitor_plan(settings(), 900, memory_high_set=True)
    assert EVENT in plan.config
    assert plan.config.get(THRESHOLD).limit_bytes == 900
    assert plan.config.get(THRESHOLD).interval_s == 0.25
    assert plan.config.get(PRESSURE) is None
    assert plan.notes == ()


def test_pressure_trigger_comes_from_the_settings():
    plan = node_monitor_plan(settings(pressure=True), 900, memory_high_set=True)
    assert plan.config.get(PRESSURE) == PsiTrigger(150_000, 2_000_000)


def test_old_kernel_threshold_and_pressure_only():
    plan = node_monitor_plan(settings(), 900, memory_high_set=False)
    assert EVENT not in plan.config
    assert plan.config.get(THRESHOLD) is not None
    assert plan.config.get(PRESSURE) == PsiTrigger(150_000, 2_000_000)
    assert any("5.9" in note for note in plan.notes)


def test_old_kernel_keeps_threshold_even_when_disabled():
    plan = node_monitor_plan(settings(threshold=False), 900, memory_high_set=False)
    assert plan.config.get(THRESHOLD) is not None
    assert any("threshold monitor on although disabled" in note for note in plan.notes)


def test_no_psi_drops_pressure_and_says_so():
    plan = node_monitor_plan(settings(pressure=True), 900, True, pressure_available=False)
    assert plan.config.get(PRESSURE) is None
    assert any("memory.pressure" in note for note in plan.notes)


def test_pressure_alone_without_psi_falls_back_to_threshold():
    only_pressure = settings(event=False, threshold=False, pressure=True)
    plan = node_monitor_plan(only_pressure, 900, True, pressure_available=False)
    assert plan.config.get(THRESHOLD) is not None and not plan.config.get(EVENT)


@pytest.mark.parametrize(
    "event,threshold,pressure,high_set,psi",
    list(itertools.product([True, False], repeat=5)),
)
def test_every_combination_runs_something_and_never_event_without_memory_high(
    event, threshold, pressure, high_set, psi
):
    try:
        monitor_settings = settings(event, threshold, pressure)
    except SettingsError:
        assert not (event or threshold or pressure)
        return
    config = node_monitor_plan(monitor_settings, 10, high_set, psi).config
    assert config.get(EVENT) or config.get(THRESHOLD) or config.get(PRESSURE)
    assert not (config.get(EVENT) and not high_set)
    assert not (config.get(PRESSURE) and not psi)
    if not high_set:
        assert config.get(THRESHOLD) is not None


def test_target_zero_still_gives_a_valid_threshold():
    assert node_monitor_plan(settings(), 0, True).config.get(THRESHOLD).limit_bytes == 1


def test_host_memory_monitor_watches_a_share_of_the_node_memory_when_enabled():
    assert (
        node_monitor_plan(settings(), 900, True, node_memory_bytes=2000).config.get(HOST_MEMORY)
        is None
    )
    host = HostMemoryMonitorSettings(enabled=True, usage_percent=90, interval_ms=500)
    wanted = MonitorSettings(host_memory=host)
    plan = node_monitor_plan(wanted, 900, memory_high_set=True, node_memory_bytes=2000)
    assert plan.config.get(HOST_MEMORY) is not None
    assert plan.config.get(HOST_MEMORY).limit_bytes == 1800
    assert plan.config.get(HOST_MEMORY).interval_s == 0.5
    assert plan.config.get(HOST_MEMORY).scope is UsageScope.HOST
    unknown = node_monitor_plan(wanted, 900, memory_high_set=True)  # node memory not known
    assert unknown.config.get(HOST_MEMORY) is None


def test_the_node_event_monitor_wakes_the_agent_on_high_only(fake_cgroup):
    """kubepods' memory.events counts its whole subtree: a container at its own memory.max
    raises max, oom and oom_kill there without the pods' cgroup being in trouble. Only high
    (kubepods over the memory.high the agent sets) is a trigger; the guard keeps all four."""
    from oomguard.monitor.triggers.event_monitor import EventMonitor
    from oomguard.monitor.triggers.factory import build_monitors

    plan = node_monitor_plan(settings(threshold=False), 900, memory_high_set=True)
    assert plan.config.get(EVENT).counters == ("high",)
    (monitor,) = build_monitors(fake_cgroup, plan.config)
    assert isinstance(monitor, EventMonitor)
    events = fake_cgroup.file("memory.events")
    events.write_bytes(b"low 0\nhigh 5\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n")
    triggers = []
    baseline = monitor.observe(fake_cgroup.memory_events(), triggers.append)
    # a container OOM-killed at its own limit (oom.group: three processes)
    events.write_bytes(b"low 0\nhigh 5\nmax 40\noom 1\noom_kill 3\noom_group_kill 1\n")
    baseline = monitor.observe(baseline, triggers.append)
    assert triggers == []
    events.write_bytes(b"low 0\nhigh 9\nmax 40\noom 1\noom_kill 3\noom_group_kill 1\n")
    monitor.observe(baseline, triggers.append)
    assert [t.detail for t in triggers] == [{"high": 4, "high_total": 9}]
    # the guard's event monitor (no counters given) still triggers on all four
    (guard_monitor,) = build_monitors(fake_cgroup, monitor_config(event=True))
    assert guard_monitor.counters == ("high", "max", "oom", "oom_kill")
