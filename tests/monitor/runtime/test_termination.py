import os
import signal
import threading

import pytest

from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.monitor.runtime.termination import (
    Terminated,
    signals_raise_terminated,
    signals_set_stop,
)


def deliver(signum: int) -> None:
    """Send ourselves a signal and give its handler a bytecode boundary to run on."""
    os.kill(os.getpid(), signum)
    signal.sigtimedwait([], 0)


def test_a_second_signal_does_not_cut_short_the_way_out_of_the_first():
    undone = []
    with signals_raise_terminated(), pytest.raises(Terminated):
        try:
            deliver(signal.SIGTERM)
        finally:
            deliver(signal.SIGTERM)  # would raise again inside this finally
            undone.append("restored")
    assert undone == ["restored"]


def test_signals_set_stop_sets_the_flag_and_raises_nothing():
    stop = StopSignal()
    before = signal.getsignal(signal.SIGTERM)
    with signals_set_stop(stop) as received:
        deliver(signal.SIGTERM)
        deliver(signal.SIGHUP)
        assert stop.is_set()
        assert received == [signal.SIGTERM, signal.SIGHUP]
    assert signal.getsignal(signal.SIGTERM) is before


def test_wait_for_returns_when_the_event_is_set():
    stop, event = StopSignal(), threading.Event()
    threading.Timer(0.05, event.set).start()
    assert stop.wait_for(event, 3600)


def test_wait_for_gives_up_as_soon_as_stop_is_set():
    stop, event = StopSignal(), threading.Event()
    threading.Timer(0.05, stop.set).start()
    # an hour to wait: only stop can end this before the suite's 600 s timeout fails it
    assert not stop.wait_for(event, 3600)
    assert not event.is_set()


def test_wait_for_times_out_with_neither():
    assert not StopSignal().wait_for(threading.Event(), 0.05)
