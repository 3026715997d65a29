"""NodeMemoryReserve status carries reserve, memory.high and usage in binary units too: printer
columns cannot format integers, and `kubectl get nodememoryreserves` should read 1.5Gi."""

from datetime import UTC, datetime

from oomguard.monitor.kube.node_reserve import ReserveReport, reserve_status, state_for
from oomguard.monitor.modes.reserve_status_reporter import significant

GIB = 2**30


def report(memory_high: int | None, usage: int) -> ReserveReport:
    return ReserveReport(
        state=state_for(None, "node-a", 16 * GIB, None),
        guarded_cgroup="kubepods.slice",
        memory_high_bytes=memory_high,
        memory_max_bytes=None,
        usage_bytes=usage,
        memory_events={"low": 0, "high": 0, "max": 0, "oom": 0, "oom_kill": 0},
    )


def test_sizes_are_reported_in_binary_units_beside_the_bytes():
    status = reserve_status(report(29 * GIB // 2, 3 * GIB // 2), None, datetime.now(UTC))
    assert (status["memoryHigh"], status["memoryHighBytes"]) == ("14.5Gi", 29 * GIB // 2)
    assert (status["usage"], status["usageBytes"]) == ("1.5Gi", 3 * GIB // 2)
    state = report(None, 0).state
    assert status["reserve"] == "1.6Gi" and state.settings.reserve_bytes == 16 * GIB // 10
    unset = reserve_status(report(None, 0), None, datetime.now(UTC))
    assert "memoryHigh" not in unset and unset["usage"] == "0B"


def test_usage_in_binary_units_is_volatile_like_usage_bytes():
    """A usage change alone must not cause a status write before the refresh interval."""
    now = datetime.now(UTC)
    a = reserve_status(report(GIB, GIB), None, now)
    b = reserve_status(report(GIB, 2 * GIB), a, now)
    assert a["usage"] != b["usage"]
    assert significant(a) == significant(b)
