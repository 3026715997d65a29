"""The guard loop with fakes: triggers in, decisions out, victims handed to the target."""

import threading
import time
from dataclasses import replace

import pytest
from monitor_fakes import FakeCgroup, FakeTarget, wait_for

from oomguard.monitor.decision.candidate import Candidate
from oomguard.monitor.decision.newest_first import Outcome
from oomguard.monitor.kernel.cgroupfs import CgroupGone
from oomguard.monitor.modes.guard import RECHECK, Guard, GuardSettings
from oomguard.monitor.triggers.kinds.event import EVENT
from oomguard.monitor.triggers.kinds.threshold import THRESHOLD
from oomguard.monitor.triggers.stop_signal import StopSignal
from oomguard.monitor.triggers.trigger import MonitorError, MonitorTargetGone, Trigger, TriggerKind

MiB = 2**20
SETTINGS = GuardSettings(
    memory_high=200 * MiB, memory_max=None, buffer=10 * MiB, grace=1.0, in_flight_timeout=3.0
)


class OneShotMonitor:
    name = "event"

    def __init__(self, triggers=(), fail=False, gone=False):
        self.triggers = list(triggers)
        self.fail = fail
        self.gone = gone

    def run(self, sink, stop):
        for t in self.triggers:
            sink(t)
        if self.gone:
            raise MonitorTargetGone("cgroup x is gone")
        if self.fail:
            raise MonitorError("cgroup gone")
        stop.wait()


def pool():
    return [Candidate(str(i), f"w{i}", float(i), 40 * MiB, protected=(i == 0)) for i in range(6)]


def run_until(guard, condition, timeout=90.0):
    """Run the loop until ``condition()`` holds (at most ``timeout`` s), then stop it; whether
    the condition held. Outside an episode the loop waits for its inbox with no timeout, so
    it ends only if the stop signal woke it. Timings in these tests are long (seconds to a
    minute) where a rule is about time, so a loaded machine cannot pass for a broken rule."""
    stop = StopSignal()
    thread = threading.Thread(target=guard.run, args=(stop,))
    thread.start()
    try:
        held = wait_for(condition, timeout)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive(), "the loop did not wake on its stop signal"
    return held


def test_step_kills_newest_until_under_target():
    cgroup = FakeCgroup(260 * MiB)
    target = FakeTarget(cgroup, pool())
    guard = Guard(cgroup, target, [], SETTINGS)
    decision = guard.step(detected_at=1.0, trigger_kind="event")
    assert decision.outcome is Outcome.VICTIMS
    assert target.stopped == [(["5", "4"], 1.0)]
    assert cgroup.usage == 180 * MiB
    [record] = guard.decisions
    assert record.victim_pids == (5, 4) and record.trigger == "event"
    assert record.detection_to_decision_seconds >= 0


def test_a_step_signals_before_it_logs_and_traces_its_decision_path(caplog):
    """Victims are signalled as soon as the decision is made (the log line and the record
    come after), and the record says where detection -> signal went."""
    cgroup = FakeCgroup(260 * MiB)
    logged_at_signal: list[int] = []

    class SignalSpy(FakeTarget):
        def stop(self, victims, detected_at):
            logged_at_signal.append(
                sum("stopping newest processes" in r.getMessage() for r in caplog.records)
            )
            super().stop(victims, detected_at)

    ticks = iter([10.0, 10.5, 10.75, 11.0])  # step starts, measured, decided, signalled
    guard = Guard(cgroup, SignalSpy(cgroup, pool()), [], SETTINGS, clock=lambda: next(ticks))
    with caplog.at_level("INFO"):
        guard.step(detected_at=9.0, trigger_kind="event")
    assert logged_at_signal == [0]
    assert any("stopping newest processes" in r.getMessage() for r in caplog.records)
    [record] = guard.decisions
    assert record.trace_seconds == {"wait": 1.0, "measure": 0.5, "decide": 0.25, "signal": 0.25}


def test_step_when_all_protected_records_once():
    cgroup = FakeCgroup(260 * MiB)
    procs = [Candidate("1", "cmd", 1.0, 250 * MiB, protected=True)]
    guard = Guard(cgroup, FakeTarget(cgroup, procs), [], SETTINGS)
    assert guard.step(1.0, "event").outcome is Outcome.NO_CANDIDATES
    assert guard.step(1.1, RECHECK).outcome is Outcome.NO_CANDIDATES
    assert len(guard.decisions) == 1


def test_trigger_from_a_monitor_leads_to_a_kill_and_stop_ends_the_loop():
    cgroup = FakeCgroup(260 * MiB)
    target = FakeTarget(cgroup, pool())
    detected = time.monotonic()
    monitor = OneShotMonitor([Trigger(TriggerKind.EVENT, detected, {"high": 1})])
    guard = Guard(cgroup, target, [monitor], SETTINGS)
    assert run_until(guard, lambda: target.stopped)
    assert target.stopped == [(["5", "4"], detected)]


def test_coalesced_triggers_make_one_decision_with_the_earliest_detection():
    cgroup = FakeCgroup(260 * MiB)
    target = FakeTarget(cgroup, pool())
    now = time.monotonic()
    triggers = [Trigger(TriggerKind.EVENT, now - 0.01 * i) for i in range(5)]
    guard = Guard(cgroup, target, [OneShotMonitor(triggers)], SETTINGS)
    assert run_until(guard, lambda: target.stopped)
    assert len(target.stopped) == 1
    assert target.stopped[0][1] == min(t.detected_at for t in triggers)


def test_rechecks_while_the_episode_is_open():
    """Usage stays high with nothing killable; the loop keeps re-checking without triggers."""
    cgroup = FakeCgroup(260 * MiB)
    procs = [Candidate("1", "cmd", 1.0, 250 * MiB, protected=True)]
    guard = Guard(
        cgroup,
        FakeTarget(cgroup, procs),
        [OneShotMonitor([Trigger(TriggerKind.EVENT, time.monotonic())])],
        SETTINGS,
    )
    calls = []
    original = guard.step
    guard.step = lambda d, k: calls.append(k) or original(d, k)
    assert run_until(guard, lambda: calls.count(RECHECK) >= 3)
    assert calls[0] == "event"


def test_monitor_failure_is_reported_and_the_loop_polls_instead():
    cgroup = FakeCgroup(100 * MiB)
    guard = Guard(cgroup, FakeTarget(cgroup, pool()), [OneShotMonitor(fail=True)], SETTINGS)
    calls = []
    original = guard.step
    guard.step = lambda d, k: calls.append(k) or original(d, k)
    assert run_until(guard, lambda: guard.errors and calls.count(RECHECK) >= 2)
    assert any("cgroup gone" in e for e in guard.errors)


@pytest.mark.parametrize("may_end", [False, True])
def test_the_guarded_cgroup_ending_is_an_error_only_where_it_may_not_end(may_end):
    """The sidecar's workload cgroup goes when the app exits: that is its end, not a fault
    (its /healthz stays green); for ``guard`` the cgroup going is an error as before."""
    settings = replace(SETTINGS, target_may_end=may_end)

    class Removed(FakeCgroup):
        def working_set(self):
            raise CgroupGone("cgroup x is gone")

    cgroup = Removed(0)
    guard = Guard(cgroup, FakeTarget(cgroup, pool()), [OneShotMonitor(gone=True)], settings)
    calls = []
    original = guard.step
    guard.step = lambda d, k: calls.append(k) or original(d, k)
    assert run_until(guard, lambda: calls.count(RECHECK) >= 2)  # failed, polled, measured
    if may_end:
        assert guard.errors == []
    else:
        assert any("event monitor stopped: cgroup x is gone" in e for e in guard.errors)
        assert any("cannot measure" in e for e in guard.errors)


def test_measurement_errors_are_reported_not_raised():
    class Broken(FakeCgroup):
        def working_set(self):
            raise OSError("boom")

    cgroup = Broken(0)
    guard = Guard(cgroup, FakeTarget(cgroup, pool()), [], SETTINGS)
    assert guard.step(1.0, "event") is None
    assert "boom" in guard.errors[0]


def test_dry_run_monitors_are_threshold_only():
    dry = GuardSettings(200 * MiB, None, 0, 1.0, 3.0, dry_run=True)
    assert not dry.monitors.get(EVENT) and dry.monitors.get(THRESHOLD).limit_bytes == 200 * MiB
    assert SETTINGS.monitors.get(EVENT)


def test_the_dying_are_measured_before_usage_is_read():
    """A victim exiting between the two reads must not make the guard stop one more."""
    order = []

    class Cg(FakeCgroup):
        def working_set(self):
            order.append("usage")
            return super().working_set()

    class Tg(FakeTarget):
        def listing(self):
            order.append("listing")
            return super().listing()

        def measure(self, listed):
            order.append("measure")
            return super().measure(listed)

    cgroup = Cg(100 * MiB)
    Guard(cgroup, Tg(cgroup, pool()), [], SETTINGS).step(1.0, "event")
    assert order[:3] == ["listing", "measure", "usage"]


class BurstMonitor:
    """memory.events under a storm: ``count`` triggers over ``spread`` seconds, once
    ``when()`` holds (at once by default)."""

    name = "event"

    def __init__(self, count, spread, when=None, before=None):
        self.count, self.spread, self.when, self.before = count, spread, when, before
        self.sent = []

    def run(self, sink, stop):
        while self.when is not None and not self.when():
            if stop.wait(0.01):
                return
        if self.before is not None:
            self.before()
        for _ in range(self.count):
            self.sent.append(time.monotonic())
            sink(Trigger(TriggerKind.EVENT, self.sent[-1]))
            time.sleep(self.spread / self.count)
        stop.wait()


def new_process(target, cgroup):
    """A callback: a new process "9", the newest, appears holding 100 MiB."""

    def appear():
        target.procs["9"] = Candidate("9", "w9", 9.0, 100 * MiB)
        cgroup.usage += 100 * MiB

    return appear


class SlowToExit(FakeTarget):
    """Victims get their signal but are still alive (in flight); every listing is counted."""

    def __init__(self, cgroup, procs):
        super().__init__(cgroup, procs)
        self.measurements = 0

    def listing(self):
        self.measurements += 1
        return super().listing()

    def stop(self, victims, detected_at):
        self.stopped.append(([v.id for v in victims], detected_at))


def test_a_burst_while_victims_are_in_flight_is_at_most_two_measurements():
    cgroup = FakeCgroup(260 * MiB)
    target = SlowToExit(cgroup, pool())
    settings = GuardSettings(200 * MiB, None, 10 * MiB, 1.0, 120.0, recheck_interval=60.0)
    burst = BurstMonitor(60, 0.3)
    guard = Guard(cgroup, target, [burst], settings)
    assert run_until(guard, lambda: len(burst.sent) == 60 and target.stopped)
    assert len(target.stopped) == 1  # the first trigger was answered, the rest waited
    assert 1 <= target.measurements <= 2


def test_the_first_trigger_after_a_quiet_spell_is_decided_at_once():
    cgroup = FakeCgroup(100 * MiB)
    target = FakeTarget(cgroup, pool())

    settings = GuardSettings(200 * MiB, None, 10 * MiB, 1.0, 3.0, recheck_interval=30.0)
    monitor = OneShotMonitor([Trigger(TriggerKind.THRESHOLD, time.monotonic())])
    monitors = [monitor]
    guard = Guard(cgroup, target, monitors, settings)
    calls = []
    original = guard.step
    guard.step = lambda d, k: calls.append(k) or original(d, k)
    # the breach comes once the calm step (nothing to free) has been taken
    burst = BurstMonitor(1, 0.0, when=lambda: calls, before=new_process(target, cgroup))
    monitors.append(burst)
    assert run_until(guard, lambda: target.stopped)
    assert [ids for ids, _ in target.stopped] == [["9"]]
    [record] = guard.decisions
    assert record.detection_to_decision_seconds < 10  # held, it would wait about 30 s


def test_once_victims_are_gone_and_nothing_is_left_to_free_a_trigger_is_not_held():
    """Kill, then a re-check sees relief; a new breach right after is decided at once."""
    cgroup = FakeCgroup(260 * MiB)
    target = FakeTarget(cgroup, pool())

    settings = GuardSettings(200 * MiB, None, 10 * MiB, 1.0, 3.0, recheck_interval=8.0)
    first = OneShotMonitor([Trigger(TriggerKind.EVENT, time.monotonic())])
    monitors = [first]
    guard = Guard(cgroup, target, monitors, settings)
    calls = []
    original = guard.step
    guard.step = lambda d, k: calls.append(k) or original(d, k)
    # the breach comes once a step after the kill found relief
    again = BurstMonitor(1, 0.0, when=lambda: len(calls) >= 2, before=new_process(target, cgroup))
    monitors.append(again)
    assert run_until(guard, lambda: len(target.stopped) == 2)
    assert [ids for ids, _ in target.stopped] == [["5", "4"], ["9"]]
    second = guard.decisions[-1]
    assert second.detection_to_decision_seconds < 4  # held, it would wait about 8 s


def test_a_trigger_while_nobody_may_be_stopped_is_still_spaced():
    """No victims in flight, but the episode lasts: a storm must not become a busy loop."""
    cgroup = FakeCgroup(260 * MiB)
    target = SlowToExit(cgroup, [Candidate("1", "cmd", 1.0, 250 * MiB, protected=True)])
    settings = GuardSettings(200 * MiB, None, 10 * MiB, 1.0, 120.0, recheck_interval=60.0)
    burst = BurstMonitor(60, 0.3)
    guard = Guard(cgroup, target, [burst], settings)
    assert run_until(guard, lambda: len(burst.sent) == 60 and target.measurements)
    assert 1 <= target.measurements <= 2


def test_a_victim_exit_wakes_the_loop_which_ends_the_episode_without_a_recheck():
    """The re-check timer is an hour here: only the victims' exit can bring the next step."""
    cgroup = FakeCgroup(260 * MiB)
    target = SlowToExit(cgroup, pool())
    settings = GuardSettings(200 * MiB, None, 10 * MiB, 1.0, 3600.0, recheck_interval=3600.0)
    trigger = Trigger(TriggerKind.EVENT, time.monotonic())
    guard = Guard(cgroup, target, [OneShotMonitor([trigger])], settings)
    stop = StopSignal()
    thread = threading.Thread(target=guard.run, args=(stop,))
    thread.start()
    try:
        assert wait_for(lambda: target.stopped)
        assert guard.wait_for() == (3600.0, True)  # an episode: victims still there
        steps = target.measurements
        for victim in target.stopped[0][0]:  # they exit
            cgroup.usage -= target.procs.pop(victim).memory_bytes
        guard.victim_exited()
        assert wait_for(lambda: target.measurements > steps)
        assert wait_for(lambda: guard.wait_for() == (None, False))  # the episode is over
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
