import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError
from oomguard.monitor.kernel.memory_events import parse_memory_events
from oomguard.monitor.triggers.event_monitor import EventMonitor, trigger_detail
from oomguard.monitor.triggers.stop_signal import StopSignal
from oomguard.monitor.triggers.trigger import MonitorError, TriggerKind


def events_bytes(high=0, max_=0, oom=0, oom_kill=0):
    return f"low 0\nhigh {high}\nmax {max_}\noom {oom}\noom_kill {oom_kill}\n".encode()


class Running:
    """A monitor in a thread, its triggers and its exception."""

    def __init__(self, monitor):
        self.monitor = monitor
        self.stop = StopSignal()
        self.triggers = []
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.monitor.run(self.triggers.append, self.stop)
        except BaseException as exc:
            self.error = exc

    def wait_for(self, predicate, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.005)
        return False

    def shutdown(self):
        """Set the stop signal and wait for the thread. The monitor polls with no timeout,
        so it ends only if the signal woke it: no wall-clock bound is needed to prove that."""
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the monitor did not wake on its stop signal"
        self.stop.close()


def settle():
    """Give the monitor thread time to install its watches and read the baseline."""
    time.sleep(0.2)


def write(cgroup, data):
    cgroup.file("memory.events").write_bytes(data)


@pytest.fixture
def running(fake_cgroup):
    write(fake_cgroup, events_bytes(high=37))
    run = Running(EventMonitor(fake_cgroup))
    settle()
    yield run
    if run.thread.is_alive():
        run.shutdown()


def test_high_at_start_is_a_baseline_and_a_rise_triggers(running, fake_cgroup):
    assert running.triggers == []
    write(fake_cgroup, events_bytes(high=40))
    assert running.wait_for(lambda: running.triggers)
    trigger = running.triggers[0]
    assert trigger.kind is TriggerKind.EVENT
    assert trigger.detail == {"high": 3, "high_total": 40}
    assert trigger.detected_at <= time.monotonic()
    running.shutdown()
    assert running.error is None


def test_coalesced_writes_add_up_and_other_counters_trigger_too(running, fake_cgroup):
    for high in range(38, 48):
        write(fake_cgroup, events_bytes(high=high))
    write(fake_cgroup, events_bytes(high=47, oom=1, oom_kill=1, max_=2))
    assert running.wait_for(lambda: any("oom_kill" in t.detail for t in running.triggers))
    assert sum(t.detail.get("high", 0) for t in running.triggers) == 10
    last = running.triggers[-1].detail
    assert {k: last[k] for k in ("max", "oom", "oom_kill", "oom_kill_total")} == {
        "max": 2,
        "oom": 1,
        "oom_kill": 1,
        "oom_kill_total": 1,
    }


def test_junk_is_skipped_and_the_last_good_read_stays_the_baseline(running, fake_cgroup):
    for junk in (b"", b"\xff\xfe", b"high -1\n", b"high 99999999999999999999999\n", b"low 0\n"):
        write(fake_cgroup, junk)
    write(fake_cgroup, events_bytes(high=38))
    assert running.wait_for(lambda: running.triggers)
    assert running.thread.is_alive()
    assert running.triggers[-1].detail["high"] == 1


def test_counters_going_down_rebase_without_a_trigger(running, fake_cgroup):
    write(fake_cgroup, events_bytes(high=1))
    time.sleep(0.2)
    write(fake_cgroup, events_bytes(high=2))
    assert running.wait_for(lambda: running.triggers)
    assert [t.detail["high"] for t in running.triggers] == [1]


def test_stop_ends_the_monitor_without_any_event(running):
    running.shutdown()
    assert running.error is None


def test_removed_cgroup_is_a_clear_error(running, fake_cgroup):
    for f in fake_cgroup.path.iterdir():
        f.unlink()
    fake_cgroup.path.rmdir()
    assert running.wait_for(lambda: not running.thread.is_alive())
    assert isinstance(running.error, MonitorError)
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


class FlakyCgroup(Cgroup):
    """memory.events becomes unreadable after the first read (as after chmod 000)."""

    reads = 0

    def memory_events(self):
        self.reads += 1
        if self.reads > 1:
            raise CgroupError(f"cannot read {self.path}/memory.events: Permission denied")
        return super().memory_events()


def test_file_becoming_unreadable_is_a_clear_error(fake_cgroup):
    run = Running(EventMonitor(FlakyCgroup(fake_cgroup.path)))
    settle()
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
    time.sleep(0.2)
    assert running.thread.is_alive()
    write(fake_cgroup, events_bytes(high=38))
    assert running.wait_for(lambda: running.triggers)


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
    assert "is gone" in str(running.error)
