"""Bars, the summary table (last line: the verdict), and the same numbers as JSON."""

from __future__ import annotations

import json

import pytest
from demo_data import guarded_run, kernel_run

from demo.render import (
    BAR_WIDTH,
    Run,
    bar,
    index_ranges,
    summary_json,
    summary_text,
    verdict_line,
    worker_bars,
)
from demo.summary import Verdict, summarize, verdict


@pytest.mark.parametrize(
    ("progress", "planned", "full"),
    [(0, 54, 0), (54, 54, 20), (27, 54, 10), (1, 54, 1), (60, 54, 20), (-1, 54, 0), (3, 0, 0)],
)
def test_bar(progress: int, planned: int, full: int) -> None:
    drawn = bar(progress, planned)
    assert len(drawn) == BAR_WIDTH
    assert drawn == "█" * full + "░" * (BAR_WIDTH - full)


def test_index_ranges() -> None:
    assert index_ranges([]) == ""
    assert index_ranges([3]) == "3"
    assert index_ranges([5, 0, 1, 2, 3, 7, 8]) == "0-3, 5, 7-8"


def test_worker_bars() -> None:
    lines = worker_bars(guarded_run())
    assert lines[0] == "   0 " + "█" * 20 + " 54/54 done"
    assert lines[4] == "   4 " + "█" * 1 + "░" * 19 + "  3/54 stopped by oomguard"
    assert len(lines) == 6
    assert worker_bars(kernel_run())[0].endswith("40/54 OOM-killed by the kernel")


def test_summary_text_rows_and_verdict_last() -> None:
    s = {Run.KERNEL: summarize(kernel_run()), Run.GUARDED: summarize(guarded_run())}
    v = verdict(s[Run.KERNEL], s[Run.GUARDED])
    text = summary_text(s, "390 MiB", "/tmp/a.log, /tmp/b.log", v)
    lines = text.splitlines()
    rows = {line.split("  ")[0]: line for line in lines[2:]}
    assert rows["kernel OOM kills"].split()[-2:] == ["1", "0"]
    assert "5 of 6 (1-5)" in rows["workers finished"]
    assert "4 of 6 (0-3)" in rows["workers finished"]
    assert "1: 0 OOM-killed by the kernel" in rows["workers lost"]
    assert "2: 4-5 stopped by oomguard" in rows["workers lost"]
    assert "87 % (270 of 310 units)" in rows["work kept"]
    assert "98 % (216 of 221 units)" in rows["work kept"]
    assert rows["time over soft limit"].split()[-4:] == ["2.00", "s", "0.20", "s"]
    assert rows["detection -> signal"].split()[-3:] == ["-", "41-63", "ms"]
    assert lines[-2] == "logs: /tmp/a.log, /tmp/b.log"
    assert lines[-1] == (
        "verdict: oomguard kept more work: 98 % with oomguard vs 87 % with the kernel alone "
        "(0 vs 1 kernel OOM kills)"
    )
    assert max(len(line) for line in lines) < 110


def test_verdict_line_without_work() -> None:
    s = summarize(guarded_run())
    assert verdict_line(Verdict.UNKNOWN, s, s) == "verdict: no work was done"


def test_json_carries_the_text_numbers() -> None:
    runs = {Run.KERNEL: kernel_run(), Run.GUARDED: guarded_run()}
    s = {r: summarize(runs[r]) for r in Run}
    v = verdict(s[Run.KERNEL], s[Run.GUARDED])
    logs = {Run.KERNEL: "/tmp/a.log", Run.GUARDED: "/tmp/b.log"}
    doc = json.loads(json.dumps(summary_json("pool", s, runs, logs, v)))
    assert doc["scenario"] == "pool" and doc["verdict"] == "guard_kept_more"
    kernel, guarded = doc["runs"]["kernel_alone"], doc["runs"]["with_oomguard"]
    assert (kernel["kernel_oom_kills"], guarded["kernel_oom_kills"]) == (1, 0)
    assert guarded["workers_finished"] == [0, 1, 2, 3]
    assert guarded["workers_lost"] == [
        {"worker": 4, "how": "stopped by oomguard"},
        {"worker": 5, "how": "stopped by oomguard"},
    ]
    assert (kernel["work_kept_percent"], guarded["work_kept_percent"]) == (87.1, 97.7)
    assert guarded["seconds_over_soft_limit"] == 0.2
    assert guarded["detection_to_signal_ms"] == {"min": 41.0, "max": 63.0}
    assert kernel["detection_to_signal_ms"] is None
    assert guarded["per_worker"][4] == {
        "worker": 4,
        "progress": 3,
        "planned": 54,
        "how": "stopped by oomguard",
    }
    assert guarded["log"] == "/tmp/b.log"
    assert doc["verdict_text"].startswith("verdict: oomguard kept more work: 98 %")
