"""The shared wait-and-drain of the decision loops: coalescing, failures, timer, wake-ups."""

import time

from oomguard.monitor.triggers.factory import MonitorFailure
from oomguard.monitor.triggers.stop_signal import StopSignal
from oomguard.monitor.triggers.trigger import MonitorError, Trigger, TriggerKind
from oomguard.monitor.triggers.trigger_inbox import TriggerInbox


def test_timeout_is_a_timed_out_wakeup():
    wakeup = TriggerInbox().next(0.01)
    assert wakeup.timed_out and not wakeup.triggers and wakeup.kinds is None


def test_pending_items_coalesce_into_one_wakeup():
    inbox = TriggerInbox()
    inbox.sink(Trigger(TriggerKind.THRESHOLD, 5.0))
    inbox.sink(Trigger(TriggerKind.EVENT, 3.0))
    inbox.sink(Trigger(TriggerKind.EVENT, 4.0))
    failure = MonitorFailure("pressure", MonitorError("gone"), 6.0)
    inbox.queue.put(failure)
    wakeup = inbox.next(None)
    assert wakeup.kinds == "event,threshold"
    assert wakeup.earliest == Trigger(TriggerKind.EVENT, 3.0)
    assert wakeup.failures == (failure,)
    assert not wakeup.timed_out and not wakeup.woken
    assert inbox.next(0.01).timed_out  # everything was drained


def test_wake_on_stop_ends_an_unbounded_wait():
    inbox, stop = TriggerInbox(), StopSignal()
    inbox.wake_on(stop)
    started = time.monotonic()
    stop.set()
    wakeup = inbox.next(None)
    assert wakeup.woken and time.monotonic() - started < 1.0


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
        assert inbox.next(5).kinds == "event"
    finally:
        assert runner.stop(2.0) == []
