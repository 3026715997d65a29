"""The monitor registry: the one list names, labels, trigger kinds and status come from."""

from monitor_fakes import monitor_config

from oomguard.monitor.feedback.metrics_registry import MonitorName
from oomguard.monitor.triggers.factory import ThresholdConfig, build_monitors
from oomguard.monitor.triggers.kinds.event import EVENT
from oomguard.monitor.triggers.kinds.threshold import THRESHOLD
from oomguard.monitor.triggers.monitor_kind import GuardFacts
from oomguard.monitor.triggers.monitor_registry import (
    MONITOR_KINDS,
    guard_config,
    guard_names,
    wanted_names,
)
from oomguard.monitor.triggers.threshold_monitor import HostMemoryUsed, ThresholdMonitor
from oomguard.monitor.triggers.trigger import TriggerKind


def test_every_kind_has_a_metrics_label_and_its_own_trigger_kind():
    assert [kind.name for kind in MONITOR_KINDS] == [name.value for name in MonitorName]
    assert {kind.trigger for kind in MONITOR_KINDS} == set(TriggerKind)


def test_built_monitors_carry_the_registry_names(fake_cgroup):
    config = monitor_config(event=True, threshold=ThresholdConfig(1 << 30))
    assert wanted_names(config) == ["event", "threshold"]
    assert [m.name for m in build_monitors(fake_cgroup, config)] == wanted_names(config)


def test_the_host_memory_monitor_is_a_threshold_on_the_whole_machine(fake_cgroup):
    config = monitor_config(event=False, host_memory=ThresholdConfig(1 << 40, 0.5))
    assert wanted_names(config) == ["hostMemory"]
    (monitor,) = build_monitors(fake_cgroup, config)
    assert isinstance(monitor, ThresholdMonitor) and monitor.name == "hostMemory"
    assert isinstance(monitor.source, HostMemoryUsed)
    assert (monitor.limit_bytes, monitor.interval) == (1 << 40, 0.5)


def test_the_guard_runs_the_event_monitor_only_where_memory_high_is_written():
    """The one place this rule lives: the event kind's guard rule, on ``memory_high_set``."""
    asked = frozenset(guard_names())
    written = guard_config(GuardFacts(asked, memory_high=1000, interval_s=0.1))
    unwritten = guard_config(
        GuardFacts(asked, memory_high=1000, interval_s=0.1, memory_high_set=False)
    )
    assert written.get(EVENT) is not None
    assert unwritten.get(EVENT) is None
    assert unwritten.get(THRESHOLD) == written.get(THRESHOLD)
