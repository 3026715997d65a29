"""The shared wait-and-drain of the decision loops: coalescing, failures, timer, wake-ups."""

import threading
import time

from oomguard.monitor.triggers.factory import MonitorFailure
from oomguard.monitor.triggers.stop_signal import StopSignal
from oomguard.monitor.triggers.trigger import MonitorError, StepTrigger, Trigger, TriggerKind
from oomguard.monitor.triggers.trigger_inbox import TriggerInbox


def test_timeout_is_a_timed_out_wakeup():
    wakeup = TriggerInbox().next(0.01)
    assert wakeup.timed_out and not wakeup.triggers and wakeup.kinds == frozenset()


def test_pending_items_coalesce_into_one_wakeup():
    inbox = TriggerInbox()
    inbox.sink(Trigger(TriggerKind.THRESHOLD, 5.0))
    inbox.sink(Trigger(TriggerKind.EVENT, 3.0))
    inbox.sink(Trigger(TriggerKind.EVENT, 4.0))
    failure = MonitorFailure("pressure", MonitorError("gone"), 6.0)
    inbox.queue.put(failure)
    wakeup = inbox.next(None)
    assert wakeup.kinds == {TriggerKind.EVENT, TriggerKind.THRESHOLD}
    assert wakeup.earliest == Trigger(TriggerKind.EVENT, 3.0)
    assert wakeup.failures == (failure,)
    assert not wakeup.timed_out and not wakeup.woken
    assert inbox.next(0.01).timed_out  # everything was drained


def test_wake_on_stop_ends_an_unbounded_wait():
    inbox, stop = TriggerInbox(), StopSignal()
    inbox.wake_on(stop)
    stop.set()
    wakeup = inbox.next(None)  # no timeout: returns only because the stop woke it
    assert wakeup.woken


def test_runner_delivers_into_the_inbox():
    class Once:
        name = "event"

        def run(self, sink, stop):
            sink(Trigger(TriggerKind.EVENT, 1.0))
            stop.wait()

    inbox = TriggerInbox()
    runner = inbox.runner([Once()])
    runner.start()
    try:
        assert inbox.next(5).kinds == {TriggerKind.EVENT}
    finally:
        assert runner.stop(2.0) == []


def _burst(inbox, count, spread):
    """Sink ``count`` triggers evenly over ``spread`` seconds, from another thread."""

    def send():
        for _ in range(count):
            inbox.sink(Trigger(TriggerKind.EVENT, time.monotonic()))
            time.sleep(spread / count)

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def test_a_burst_within_the_spacing_is_at_most_two_wakeups():
    inbox = TriggerInbox(min_spacing=2.0)  # over 6x the burst: a loaded machine's margin
    sender = _burst(inbox, 50, 0.3)
    wakeups = []
    received = 0
    while received < 50:
        wakeup = inbox.next(5.0)
        assert not wakeup.timed_out
        wakeups.append(wakeup)
        received += len(wakeup.triggers)
    sender.join()
    assert len(wakeups) <= 2
    assert inbox.next(0.01).timed_out


def test_triggers_right_after_a_step_wait_for_the_spacing_then_come_together():
    inbox = TriggerInbox(min_spacing=0.5)
    inbox.sink(Trigger(TriggerKind.EVENT, 1.0))
    assert len(inbox.next(None).triggers) == 1  # the loop steps, then comes back:
    started = time.monotonic()
    inbox.sink(Trigger(TriggerKind.EVENT, 2.0))
    inbox.sink(Trigger(TriggerKind.THRESHOLD, 3.0))
    wakeup = inbox.next(None)
    assert time.monotonic() - started >= 0.45
    assert len(wakeup.triggers) == 2 and wakeup.kinds == {TriggerKind.EVENT, TriggerKind.THRESHOLD}


def test_the_first_trigger_after_a_quiet_spell_is_handed_over_at_once():
    inbox = TriggerInbox(min_spacing=2.0)
    inbox.sink(Trigger(TriggerKind.EVENT, 1.0))
    inbox.next(None)  # a step happened
    sent = []

    def later():
        time.sleep(2.2)  # quiet for longer than the spacing
        sent.append(time.monotonic())
        inbox.sink(Trigger(TriggerKind.EVENT, sent[0]))

    threading.Thread(target=later).start()
    wakeup = inbox.next(5.0)
    assert wakeup.kinds == {TriggerKind.EVENT}
    assert time.monotonic() - sent[0] < 1.0  # not held for another spacing (2 s)


def test_the_very_first_trigger_is_not_held():
    inbox = TriggerInbox(min_spacing=5.0)
    inbox.sink(Trigger(TriggerKind.EVENT, 1.0))
    started = time.monotonic()
    assert inbox.next(None).kinds == {TriggerKind.EVENT}
    assert time.monotonic() - started < 2.5  # held, it would have taken 5 s


def test_a_wake_up_is_never_held():
    inbox = TriggerInbox(min_spacing=5.0)
    inbox.wake()
    inbox.next(None)
    inbox.sink(Trigger(TriggerKind.EVENT, 1.0))
    inbox.wake()
    started = time.monotonic()
    wakeup = inbox.next(None)
    assert wakeup.woken and wakeup.kinds == {TriggerKind.EVENT}
    assert time.monotonic() - started < 2.5  # held, it would have taken 5 s


def test_without_hold_a_trigger_right_after_a_step_is_handed_over_at_once():
    inbox = TriggerInbox(min_spacing=5.0)
    inbox.sink(Trigger(TriggerKind.EVENT, 1.0))
    inbox.next(None)  # a step happened; the loop says the episode is over
    inbox.sink(Trigger(TriggerKind.EVENT, 2.0))
    started = time.monotonic()
    assert inbox.next(None, hold=False).kinds == {TriggerKind.EVENT}
    assert time.monotonic() - started < 2.5  # held, it would have taken 5 s


def test_a_step_answers_the_monitor_that_notices_first_by_design_or_is_a_recheck():
    inbox = TriggerInbox()
    inbox.sink(Trigger(TriggerKind.THRESHOLD, 1.0))
    inbox.sink(Trigger(TriggerKind.PRESSURE, 2.0))
    assert inbox.next(None).step_trigger is StepTrigger.PRESSURE
    inbox.sink(Trigger(TriggerKind.THRESHOLD, 3.0))
    inbox.sink(Trigger(TriggerKind.EVENT, 4.0))
    assert inbox.next(None).step_trigger is StepTrigger.EVENT
    assert inbox.next(0.01).step_trigger is StepTrigger.RECHECK


def test_handing_triggers_over_marks_them_consumed_and_not_before():
    """The event monitor sleeps until its trigger is consumed: that happens when a wake-up
    hands it to the loop, never while it only waits in the queue."""
    taken: list[str] = []
    inbox = TriggerInbox()
    inbox.sink(Trigger(TriggerKind.EVENT, 1.0, on_consumed=lambda: taken.append("a")))
    inbox.sink(Trigger(TriggerKind.THRESHOLD, 2.0))  # no callback: nothing to tell
    assert taken == []
    inbox.sink(Trigger(TriggerKind.EVENT, 3.0, on_consumed=lambda: taken.append("b")))
    wakeup = inbox.next(None)
    assert taken == ["a", "b"]
    assert len(wakeup.triggers) == 3
    # the callback is not part of a trigger's value
    assert Trigger(TriggerKind.EVENT, 1.0, on_consumed=lambda: None) == Trigger(
        TriggerKind.EVENT, 1.0
    )
