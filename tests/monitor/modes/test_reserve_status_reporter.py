"""When the agent writes NodeMemoryReserve status: on change (debounced), on refresh, never
without an object, and again after an API error; and that the reporter sleeps until the
agent says something changed or a write falls due, never on a tick."""

import threading
from datetime import UTC, datetime

from monitor_fakes import RecordingPoller, wait_for

from oomguard.monitor.kube.node_reserve import ReserveReport, ReserveState
from oomguard.monitor.modes.reserve_status_reporter import ReserveStatusReporter
from oomguard.monitor.runtime.change_notice import ChangeNotice
from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.monitor.settings import NodeSettings, default_node_settings


class Writer:
    def __init__(self):
        self.written = []
        self.fail = None
        self.exists = True

    def write(self, status):
        if self.fail is not None:
            raise self.fail
        if not self.exists:
            return False
        self.written.append(status)
        return True


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


STATE = ReserveState(NodeSettings("n", 2000, 500, source_policy="p"), generation=3)


def report(usage=100, high=7, state=STATE):
    return ReserveReport(
        state=state,
        guarded_cgroup="kubepods.slice",
        memory_high_bytes=1500,
        memory_max_bytes=None,
        usage_bytes=usage,
        memory_events={"low": 0, "high": high, "max": 0, "oom": 0, "oom_kill": 0},
    )


def make(current):
    writer, clock = Writer(), Clock()
    reporter = ReserveStatusReporter(
        lambda: current[0],
        writer,
        min_interval=2,
        refresh_interval=60,
        clock=clock,
        wall_clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
    )
    return reporter, writer, clock


def test_first_report_is_written_with_generation_and_counters():
    current = [report()]
    reporter, writer, _ = make(current)
    assert reporter.report_once()
    status = writer.written[0]
    assert status["observedGeneration"] == 3
    assert status["memoryEvents"]["high"] == 7
    assert status["memoryHighBytes"] == 1500


def test_usage_alone_waits_for_the_refresh_and_changes_wait_for_the_debounce():
    current = [report()]
    reporter, writer, clock = make(current)
    reporter.report_once()
    current[0] = report(usage=200)
    clock.now = 30
    assert not reporter.report_once()
    current[0] = report(usage=200, high=9)
    clock.now = 30
    assert reporter.report_once()  # a counter moved and 30s > 2s since the last write
    current[0] = report(usage=200, high=10)
    clock.now = 31
    assert not reporter.report_once()  # debounced
    clock.now = 32.5
    assert reporter.report_once()
    current[0] = report(usage=300, high=10)
    clock.now = 93
    assert reporter.report_once()  # refresh
    assert [s["usageBytes"] for s in writer.written] == [100, 200, 200, 300]


def test_nothing_is_written_without_an_object():
    defaults = ReserveState(default_node_settings("n", 2000), None)
    current = [report(state=defaults)]
    reporter, writer, _ = make(current)
    assert not reporter.report_once()
    current[0] = None
    assert not reporter.report_once()
    assert writer.written == []


def test_api_errors_are_counted_and_retried():
    current = [report()]
    reporter, writer, clock = make(current)
    writer.fail = ConnectionError("refused")
    assert not reporter.report_once()
    assert reporter.errors == 1
    writer.fail = None
    clock.now = 0.5
    assert reporter.report_once()


def test_deleted_object_starts_over():
    current = [report()]
    reporter, writer, clock = make(current)
    reporter.report_once()
    writer.exists = False
    current[0] = report(high=8)
    clock.now = 5
    assert not reporter.report_once()
    writer.exists = True
    clock.now = 5.1
    assert not reporter.report_once()  # debounce after the failed attempt
    clock.now = 8
    assert reporter.report_once()


def test_memory_pressure_coming_or_going_is_written_at_once():
    """Not held back by min_interval: the operator's taint follows this write."""
    from dataclasses import replace

    from oomguard.monitor.decision.memory_pressure import PressureState
    from oomguard.monitor.modes.reserve_status_reporter import pressure_status

    current = [report()]
    reporter, writer, clock = make(current)
    assert reporter.report_once()
    current[0] = replace(report(), pressure=PressureState(since=1.0, freed=1))
    clock.now = 0.5
    assert reporter.report_once()  # at once, before min_interval (2 s) would allow
    assert pressure_status(writer.written[-1]) == "True"
    current[0] = replace(report(), pressure=PressureState(since=1.0, freed=2))
    clock.now = 1.0
    assert not reporter.report_once()  # only the message changed: min_interval holds it
    current[0] = report()
    clock.now = 1.5
    assert reporter.report_once()
    assert pressure_status(writer.written[-1]) == "False"


# -- when the reporter wakes -----------------------------------------------------------------


def test_the_next_wake_up_is_the_refresh_the_debounce_or_a_change():
    current = [None]
    reporter, writer, clock = make(current)
    reporter.report_once()
    assert reporter.seconds_until_due() is None  # no object: only a change can matter
    current[0] = report()
    reporter.report_once()
    assert reporter.seconds_until_due() == 60  # written: next, the refresh
    current[0] = report(high=8)
    clock.now = 0.5
    assert not reporter.report_once()
    assert reporter.seconds_until_due() == 1.5  # a change held back by the debounce
    writer.fail = ConnectionError("refused")
    clock.now = 2
    assert not reporter.report_once()
    assert reporter.seconds_until_due() == 2  # an API error: again after the debounce


def start_reporter(reporter):
    stop, changes, poller = StopSignal(), ChangeNotice(), RecordingPoller()
    thread = threading.Thread(target=reporter.run, args=(stop, changes, lambda: poller))
    thread.start()
    return stop, changes, poller, thread


def test_an_idle_reporter_sleeps_until_told_and_stops_at_once():
    """No object yet: nothing to write until the agent says something changed."""
    current = [None]
    reporter, writer, _ = make(current)
    stop, changes, poller, thread = start_reporter(reporter)
    try:
        assert wait_for(lambda: len(poller.timeouts) == 1)
        current[0] = report()
        changes.notify()
        assert wait_for(lambda: len(writer.written) == 1)
        assert wait_for(lambda: len(poller.timeouts) == 2)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert poller.timeouts == [None, 60_000]  # asleep, then until the refresh: never a tick


def test_a_change_inside_the_debounce_is_written_when_the_debounce_ends():
    current = [report()]
    reporter, writer, clock = make(current)
    stop, changes, poller, thread = start_reporter(reporter)
    try:
        assert wait_for(lambda: len(poller.timeouts) == 1)
        current[0] = report(high=8)
        clock.now = 1.0
        changes.notify()
        assert wait_for(lambda: len(poller.timeouts) == 2)
        clock.now = 2.0  # the debounce has passed when the 1 s wait ends
        assert wait_for(lambda: len(writer.written) == 2)
    finally:
        stop.set()
        thread.join(10)
    assert poller.timeouts[:2] == [60_000, 1_000]
    assert writer.written[-1]["memoryEvents"]["high"] == 8
