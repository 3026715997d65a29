"""When the agent writes NodeMemoryReserve status: on change (debounced), on refresh, never
without an object, and again after an API error."""

from datetime import UTC, datetime

from oomguard.monitor.kube.node_reserve import ReserveReport, ReserveState
from oomguard.monitor.modes.reserve_status_reporter import ReserveStatusReporter
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
