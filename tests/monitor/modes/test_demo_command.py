"""The demo's summary table: one short cell per row, however many workers the pool had."""

from oomguard.monitor.modes.demo_command import index_ranges, summary


def test_index_ranges_collapse_runs():
    assert index_ranges([]) == ""
    assert index_ranges([3]) == "3"
    assert index_ranges([5, 0, 1, 2, 3, 7, 8]) == "0-3, 5, 7-8"


def workers(outcomes):
    return [{"index": i, "pid": 100 + i, "outcome": o} for i, o in enumerate(outcomes)]


def report(oom_kill, victims=()):
    return {"memory_events": {"final": {"oom_kill": oom_kill}}, "victims": list(victims)}


def test_summary_stays_narrow_with_many_workers():
    before = workers(["killed by SIGKILL"] * 4 + ["finished"] * 8 + ["killed by SIGKILL"] * 8)
    after = workers(["finished"] * 16 + ["killed by SIGTERM"] * 3 + ["exited 3"])
    victims = [
        {"pid": 100 + i, "signal": "SIGTERM", "detection_to_signal_seconds": s}
        for i, s in ((16, 0.031), (17, 0.0402), (18, 0.12))
    ]
    text = summary(
        {
            "before": {"workers": before, "report": report(12)},
            "after": {"workers": after, "report": report(0, victims)},
        }
    )
    lines = text.splitlines()
    assert max(len(line) for line in lines) < 110, text
    rows = {line.split("  ")[0]: line for line in lines[2:]}
    assert "12 (0-3, 12-19): 12 SIGKILL" in rows["workers lost"]
    assert "4 (16-19): 3 SIGTERM, 1 exited 3" in rows["workers lost"]
    assert "8 of 20 (4-11)" in rows["workers finished"]
    assert "16 of 20 (0-15)" in rows["workers finished"]
    assert "3 (16-18): 3 SIGTERM, 31-120 ms after detection" in rows["stopped by oomguard"]
    assert rows["kernel oom_kill"].split()[-2:] == ["12", "0"]


def test_summary_with_nothing_lost():
    clean = {"workers": workers(["finished"] * 3), "report": report(0)}
    text = summary({"before": clean, "after": clean})
    assert "workers lost" in text and "3 of 3 (0-2)" in text
    assert [line.split()[-1] for line in text.splitlines() if "lost" in line] == ["-"]
