import itertools
import threading

import pytest
from monitor_fakes import wait_for
from monitor_threads import blocked_in_poll

from oomguard.monitor.kernel.cgroupfs import Cgroup
from oomguard.monitor.triggers.stop_signal import StopSignal
from oomguard.monitor.triggers.threshold_monitor import (
    CgroupWorkingSet,
    HostMemoryUsed,
    ThresholdMonitor,
    above_limit,
)
from oomguard.monitor.triggers.trigger import MonitorError, MonitorTargetGone, TriggerKind

WORKING_SET = 104857600 - 19922944  # fake tree: memory.current - inactive_file


def test_above_limit_is_strict():
    assert above_limit(11, 10)
    assert not above_limit(10, 10)


def test_triggers_when_the_working_set_is_above_the_limit(fake_cgroup):
    triggers = []
    ThresholdMonitor(CgroupWorkingSet(fake_cgroup), WORKING_SET - 1).poll_once(triggers.append)
    ThresholdMonitor(CgroupWorkingSet(fake_cgroup), WORKING_SET).poll_once(triggers.append)
    assert len(triggers) == 1
    assert triggers[0].kind is TriggerKind.THRESHOLD
    assert triggers[0].detail == {"usage": WORKING_SET, "limit": WORKING_SET - 1}


def test_host_usage_comes_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_bytes(b"MemTotal: 1000 kB\nMemAvailable: 200 kB\n")
    assert HostMemoryUsed(meminfo).read() == 800 * 1024
    assert HostMemoryUsed().read() > 0  # this host's real /proc/meminfo


def test_junk_is_skipped_and_a_missing_cgroup_is_an_error(fake_cgroup, tmp_path):
    triggers = []
    fake_cgroup.file("memory.current").write_bytes(b"lots\n")
    ThresholdMonitor(CgroupWorkingSet(fake_cgroup), 1).poll_once(triggers.append)
    assert triggers == []
    with pytest.raises(MonitorTargetGone, match="is gone"):
        ThresholdMonitor(CgroupWorkingSet(Cgroup(tmp_path / "x")), 1).poll_once(triggers.append)
    with pytest.raises(MonitorError, match="cannot read host memory used"):
        ThresholdMonitor(HostMemoryUsed(tmp_path / "none"), 1).poll_once(triggers.append)


def run_then_stop(monitor, count):
    """Run ``monitor`` in a thread until it sent ``count`` triggers, then stop it: its
    triggers, and whether its thread ended within 30 s of the stop signal."""
    stop = StopSignal()
    triggers = []

    def take(trigger):  # a loop that is never busy: every trigger taken at once
        triggers.append(trigger)
        trigger.consumed()

    thread = threading.Thread(target=monitor.run, args=(take, stop))
    thread.start()
    assert wait_for(lambda: len(triggers) >= count), f"only {len(triggers)} triggers"
    stop.set()
    thread.join(30)
    return triggers, not thread.is_alive()


def test_polls_at_the_interval(fake_cgroup):
    """Never faster than the interval (a slow machine may only make the gaps longer)."""
    monitor = ThresholdMonitor(CgroupWorkingSet(fake_cgroup), 1, interval=0.05)
    triggers, ended = run_then_stop(monitor, 4)
    assert ended
    times = [t.detected_at for t in triggers]
    assert all(later - earlier >= 0.049 for earlier, later in itertools.pairwise(times)), times


def test_stop_ends_the_wait_between_polls(fake_cgroup):
    """An hour between polls: the thread ends only if the stop signal cut the wait short."""
    monitor = ThresholdMonitor(CgroupWorkingSet(fake_cgroup), 1, interval=3600)
    triggers, ended = run_then_stop(monitor, 1)  # the first poll, at once
    assert ended, "the monitor slept through its stop signal"
    assert len(triggers) == 1


@pytest.mark.parametrize(("limit", "interval"), [(0, 0.1), (1, 0), (1, -1)])
def test_bad_settings_are_refused(fake_cgroup, limit, interval):
    with pytest.raises(ValueError, match="must be positive"):
        ThresholdMonitor(CgroupWorkingSet(fake_cgroup), limit, interval)


def test_under_the_limit_memory_current_alone_is_read(fake_cgroup):
    """The working set is memory.current minus inactive_file: while memory.current is at or
    under the limit, memory.stat (here gone: reading it would be an error) is not read."""
    fake_cgroup.file("memory.stat").unlink()
    current = 104857600
    monitor = ThresholdMonitor(CgroupWorkingSet(fake_cgroup), current)
    assert monitor.poll_once(lambda t: None) is False
    with pytest.raises(MonitorError):
        ThresholdMonitor(CgroupWorkingSet(fake_cgroup), current - 1).poll_once(lambda t: None)


class CountingSource:
    name = "counted usage"

    def __init__(self):
        self.reads = 0

    def read(self):
        self.reads += 1
        return 100

    def upper_bound(self):
        return None


def test_after_a_trigger_nothing_is_polled_until_the_loop_takes_it():
    source = CountingSource()
    monitor = ThresholdMonitor(source, 1, interval=0.01)
    stop, triggers = StopSignal(), []
    thread = threading.Thread(target=monitor.run, args=(triggers.append, stop), daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: triggers)
        assert wait_for(lambda: blocked_in_poll(thread))  # waiting for the loop
        assert source.reads == 1 and len(triggers) == 1
        triggers[0].consumed()
        assert wait_for(lambda: len(triggers) == 2)
        assert source.reads == 2
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
