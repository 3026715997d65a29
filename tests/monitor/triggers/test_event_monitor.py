"""The event monitor on plain-file fake cgroups (real inotify, files written by the test).

Every test that writes waits first until the monitor is armed (baseline read, blocked in
poll) and, between writes that must be seen apart, until the monitor has read the first:
conditions from ``monitor_threads``, never sleeps, so a slow machine cannot reorder them.
"""

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inotify_simple import Event, INotify, flags
from monitor_threads import ObservedCgroup, Running

from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError
from oomguard.monitor.kernel.memory_events import parse_memory_events
from oomguard.monitor.triggers import event_monitor
from oomguard.monitor.triggers.event_monitor import EventMonitor, trigger_detail
from oomguard.monitor.triggers.stop_signal import StopSignal
from oomguard.monitor.triggers.trigger import MonitorError, MonitorTargetGone, TriggerKind


def events_bytes(high=0, max_=0, oom=0, oom_kill=0):
    return f"low 0\nhigh {high}\nmax {max_}\noom {oom}\noom_kill {oom_kill}\n".encode()


def write(cgroup, data):
    cgroup.file("memory.events").write_bytes(data)


@pytest.fixture
def observed(fake_cgroup):
    write(fake_cgroup, events_bytes(high=37))
    return ObservedCgroup(fake_cgroup.path)


@pytest.fixture
def running(observed):
    run = Running(EventMonitor(observed))
    run.wait_armed()
    yield run
    if run.thread.is_alive():
        run.shutdown()


def test_high_at_start_is_a_baseline_and_a_rise_triggers(running, observed):
    assert observed.has_read(high=37)  # the baseline was read, and triggered nothing
    assert running.triggers == []
    write(observed, events_bytes(high=40))
    assert running.wait_for(lambda: running.triggers)
    trigger = running.triggers[0]
    assert trigger.kind is TriggerKind.EVENT
    assert trigger.detail == {"high": 3, "high_total": 40}
    assert trigger.detected_at <= time.monotonic()
    running.shutdown()
    assert running.error is None


def test_coalesced_writes_add_up_and_other_counters_trigger_too(running, observed):
    for high in range(38, 48):
        write(observed, events_bytes(high=high))
    write(observed, events_bytes(high=47, oom=1, oom_kill=1, max_=2))
    assert running.wait_for(lambda: any("oom_kill" in t.detail for t in running.triggers))
    assert sum(t.detail.get("high", 0) for t in running.triggers) == 10
    last = running.triggers[-1].detail
    assert {k: last[k] for k in ("max", "oom", "oom_kill", "oom_kill_total")} == {
        "max": 2,
        "oom": 1,
        "oom_kill": 1,
        "oom_kill_total": 1,
    }


def test_junk_is_skipped_and_the_last_good_read_stays_the_baseline(running, observed):
    for junk in (b"", b"\xff\xfe", b"high -1\n", b"high 99999999999999999999999\n", b"low 0\n"):
        write(observed, junk)
    write(observed, events_bytes(high=38))
    assert running.wait_for(lambda: running.triggers)
    assert running.thread.is_alive()
    assert running.triggers[-1].detail["high"] == 1


def test_counters_going_down_rebase_without_a_trigger(running, observed):
    write(observed, events_bytes(high=1))
    assert running.wait_for(lambda: observed.has_read(high=1))
    write(observed, events_bytes(high=2))
    assert running.wait_for(lambda: running.triggers)
    assert [t.detail for t in running.triggers] == [{"high": 1, "high_total": 2}]


def test_a_counter_going_down_while_another_rises_rebases_without_a_trigger(running, observed):
    """One read where ``high`` went down (the file was replaced) and ``oom_kill`` rose: the
    whole read is the new baseline, so the rise is not reported; the next rise is, alone."""
    write(observed, events_bytes(high=3, oom_kill=2))
    assert running.wait_for(lambda: observed.has_read(high=3, oom_kill=2))
    write(observed, events_bytes(high=4, oom_kill=2))
    assert running.wait_for(lambda: running.triggers)
    assert [t.detail for t in running.triggers] == [{"high": 1, "high_total": 4}]
    assert running.thread.is_alive()


def test_an_inotify_queue_overflow_re_reads_and_keeps_watching(observed, monkeypatch):
    """On IN_Q_OVERFLOW the kernel dropped the events themselves: the monitor must re-read
    memory.events anyway (a rise may hide behind it) and go on watching."""
    real_read = INotify.read
    overflows = []

    def read_with_overflow(self, timeout=None, read_delay=None):
        events = real_read(self, timeout=timeout, read_delay=read_delay)
        if not overflows:  # the first wake-up: everything queued was lost to an overflow
            overflows.append(events)
            return [Event(-1, flags.Q_OVERFLOW, 0, "")]
        return events

    monkeypatch.setattr(event_monitor.INotify, "read", read_with_overflow)
    run = Running(EventMonitor(observed))
    run.wait_armed()
    try:
        write(observed, events_bytes(high=40))
        assert run.wait_for(lambda: run.triggers or not run.thread.is_alive())
        assert overflows, "the monitor never read its inotify queue"
        assert run.error is None and run.thread.is_alive()
        assert [t.detail for t in run.triggers] == [{"high": 3, "high_total": 40}]
        write(observed, events_bytes(high=41))
        assert run.wait_for(lambda: len(run.triggers) == 2)
        assert run.triggers[1].detail == {"high": 1, "high_total": 41}
    finally:
        run.shutdown()


def test_after_a_trigger_nothing_is_read_until_the_loop_takes_it(observed):
    """Coalescing at the source: while its trigger waits for the loop, the monitor reads
    nothing however often memory.events changes; once taken, it reads once and sends one
    trigger with everything that rose meanwhile."""
    run = Running(EventMonitor(observed), consume=False)
    run.wait_armed()
    try:
        write(observed, events_bytes(high=40))
        assert run.wait_for(lambda: run.triggers)
        run.wait_armed()  # back in poll(), now on the consumption signal
        reads = len(observed.reads)
        for high in range(41, 46):
            write(observed, events_bytes(high=high))
        run.wait_armed()
        assert len(observed.reads) == reads
        assert [t.detail for t in run.triggers] == [{"high": 3, "high_total": 40}]
        run.consume()
        assert run.wait_for(lambda: len(run.triggers) == 2 or not run.thread.is_alive())
        assert run.triggers[1].detail == {"high": 5, "high_total": 45}
        assert len(observed.reads) == reads + 1
        run.consume()
        assert run.wait_for(lambda: len(observed.reads) == reads + 2)  # nothing new: no trigger
        write(observed, events_bytes(high=46))
        assert run.wait_for(lambda: len(run.triggers) == 3)
        assert run.triggers[2].detail == {"high": 1, "high_total": 46}
    finally:
        run.shutdown()
    assert run.error is None


def test_a_trigger_taken_after_the_monitor_stopped_is_harmless(observed):
    run = Running(EventMonitor(observed), consume=False)
    run.wait_armed()
    write(observed, events_bytes(high=40))
    assert run.wait_for(lambda: run.triggers)
    run.shutdown()
    run.consume()  # the monitor closed its signal: marking it does nothing
    assert run.error is None


def test_stop_ends_the_monitor_without_any_event(running):
    running.shutdown()
    assert running.error is None


def test_removed_cgroup_is_a_clear_error(running, fake_cgroup):
    for f in fake_cgroup.path.iterdir():
        f.unlink()
    fake_cgroup.path.rmdir()
    assert running.wait_for(lambda: not running.thread.is_alive())
    assert isinstance(running.error, MonitorTargetGone)  # a MonitorError that says "gone"
    assert "is gone" in str(running.error)


def test_missing_cgroup_at_start_is_a_clear_error(tmp_path):
    with pytest.raises(MonitorError, match="does not exist"):
        EventMonitor(Cgroup(tmp_path / "nope")).run(lambda t: None, StopSignal())


@pytest.mark.parametrize("bad", ["junk", "directory"])
def test_unusable_memory_events_at_start_is_a_clear_error(fake_cgroup, bad):
    path = fake_cgroup.file("memory.events")
    if bad == "junk":
        path.write_bytes(b"high x\n")
    else:
        path.unlink()
        path.mkdir()
    with pytest.raises(MonitorError, match=r"cannot read the starting memory\.events"):
        EventMonitor(fake_cgroup).run(lambda t: None, StopSignal())


class FlakyCgroup(ObservedCgroup):
    """memory.events becomes unreadable after the first read (as after chmod 000)."""

    def memory_events(self):
        if self.reads:
            raise CgroupError(f"cannot read {self.path}/memory.events: Permission denied")
        return super().memory_events()


def test_file_becoming_unreadable_is_a_clear_error(fake_cgroup):
    run = Running(EventMonitor(FlakyCgroup(fake_cgroup.path)))
    run.wait_armed()
    write(fake_cgroup, events_bytes(high=1))
    assert run.wait_for(lambda: not run.thread.is_alive())
    assert isinstance(run.error, MonitorError)
    assert "became unreadable" in str(run.error)
    assert "Permission denied" in str(run.error)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_fuzzed_contents_never_escape_observe(fake_cgroup, data):
    monitor = EventMonitor(fake_cgroup)
    baseline = parse_memory_events(events_bytes(high=5))
    write(fake_cgroup, data)
    triggers = []
    next_baseline = monitor.observe(baseline, triggers.append)
    assert next_baseline is baseline or next_baseline == parse_memory_events(data)
    assert all(t.detail for t in triggers)


def test_trigger_detail_names_deltas_and_totals():
    new = parse_memory_events(events_bytes(high=9, oom_kill=2))
    assert trigger_detail({"high": 4}, new) == {"high": 4, "high_total": 9}


def test_a_sibling_leaving_the_parent_is_not_our_removal(running, fake_cgroup):
    sibling = fake_cgroup.path.parent / "sibling"
    sibling.mkdir()
    sibling.rmdir()
    # inotify queues in order: a monitor that took the sibling for itself would end before
    # it read this write, and never trigger
    write(fake_cgroup, events_bytes(high=38))
    assert running.wait_for(lambda: running.triggers or not running.thread.is_alive())
    assert running.thread.is_alive(), running.error
    assert running.triggers


def test_rmdir_seen_in_the_parent_is_a_removal(fake_cgroup):
    """The real kernel reports a cgroup rmdir only as IN_DELETE in the parent."""
    from inotify_simple import flags

    monitor = EventMonitor(fake_cgroup)
    assert monitor._is_removal(flags.DELETE | flags.ISDIR, fake_cgroup.path.name)
    assert not monitor._is_removal(flags.DELETE | flags.ISDIR, "sibling")
    assert monitor._is_removal(flags.IGNORED, "")


def test_renaming_the_cgroup_away_is_a_removal(running, fake_cgroup):
    fake_cgroup.path.rename(fake_cgroup.path.parent / "elsewhere")
    assert running.wait_for(lambda: not running.thread.is_alive())
    assert isinstance(running.error, MonitorTargetGone)
    assert "is gone" in str(running.error)
