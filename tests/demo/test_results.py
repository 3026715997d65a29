"""Raw files to typed results on one clock."""

from __future__ import annotations

import json

import pytest

from demo.results import RELIEF_MESSAGE, START_MESSAGE, parse_log, parse_run, parse_timestamp

MiB = 2**20
T0 = parse_timestamp("2026-12-01T22:08:04.000Z")


def test_parse_timestamp() -> None:
    assert parse_timestamp("2026-12-01T22:08:04.379Z") - T0 == pytest.approx(0.379)


def test_parse_log_keeps_guard_records_only() -> None:
    lines = [
        "pool: worker 0 finished",  # the workload's own output shares the file
        "",
        "[1, 2]",
        json.dumps({"msg": "no ts"}),
        json.dumps(
            {
                "ts": "2026-12-01T22:08:04.500Z",
                "level": "warning",
                "logger": "oomguard.guard",
                "msg": "stopping newest processes",
                "victims": [104],
            }
        ),
    ]
    (record,) = parse_log(lines)
    assert record.msg == "stopping newest processes"
    assert record.at - T0 == pytest.approx(0.5)
    assert record.fields == {"victims": [104]}


def log(at: float, msg: str) -> str:
    millis = round(at * 1000)
    return json.dumps(
        {"ts": f"2026-12-01T22:08:{4 + millis // 1000:02d}.{millis % 1000:03d}Z", "msg": msg}
    )


REPORT = {
    "settings": {
        "memory_high_bytes": 390 * MiB,
        "memory_max_bytes": 440 * MiB,
        "buffer_bytes": 20 * MiB,
        "dry_run": False,
    },
    "memory_events": {"final": {"oom_kill": 2, "high": 7}},
    "victims": [
        {
            "pid": 104,
            "signal": "SIGTERM",
            "memory_bytes": 60 * MiB,
            "detected_at_seconds": 4.5,
            "detection_to_signal_seconds": 0.04,
            "detection_to_exit_seconds": 0.09,
        }
    ],
    "decisions": [
        {
            "trigger": "event",
            "detected_at_seconds": 4.5,
            "outcome": "victims",
            "usage_bytes": 405 * MiB,
            "amount_to_free_bytes": 35 * MiB,
            "victim_pids": [104],
        },
        {"trigger": "event", "detected_at_seconds": 6.0, "outcome": "no-candidates"},
    ],
}
WORKERS = {
    "workers": [
        {
            "index": 0,
            "pid": 100,
            "outcome": "finished",
            "progress": 54,
            "planned": 54,
            "ended_at": T0 + 9.0,
        },
        {
            "index": 1,
            "pid": 104,
            "outcome": "killed by SIGTERM",
            "progress": 3,
            "planned": 54,
            "ended_at": T0 + 4.6,
        },
    ]
}


def test_parse_run_puts_everything_on_the_guard_start_clock() -> None:
    lines = [log(0.25, START_MESSAGE), log(4.75, RELIEF_MESSAGE), log(9.0, "command exited")]
    samples = [(T0 + 0.25, 1), (T0 + 1.25, 2)]
    run = parse_run(REPORT, WORKERS, parse_log(lines), samples)
    assert run.zero == pytest.approx(T0 + 0.25)
    assert run.oom_kills == 2 and not run.dry_run
    assert (run.memory_high_bytes, run.memory_max_bytes, run.buffer_bytes) == (
        390 * MiB,
        440 * MiB,
        20 * MiB,
    )
    assert run.reliefs == pytest.approx((4.5,))
    assert [t for t, _ in run.samples] == pytest.approx([0.0, 1.0])
    assert run.workers[1].ended_at == pytest.approx(4.35)
    assert run.workers[1].outcome == "killed by SIGTERM"
    assert len(run.decisions) == 1  # only decisions that chose victims
    assert run.decisions[0].victim_pids == (104,)
    assert run.victims[0].detection_to_exit == 0.09


def test_parse_run_from_nothing() -> None:
    run = parse_run({}, {}, [], [])
    assert run.workers == () and run.oom_kills == 0 and run.zero == 0.0
    assert run.memory_max_bytes is None


def test_without_a_start_record_the_first_sample_is_zero() -> None:
    run = parse_run(REPORT, WORKERS, [], [(T0 + 2.0, 1)])
    assert run.zero == T0 + 2.0
