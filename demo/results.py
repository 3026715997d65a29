"""One run's raw results as typed values: the pool's workers, the guard's report and log.

Parsed from the files a run leaves (the workload's ``--results``, the guard's ``--report``
and its ``--log-format json`` lines). All times are seconds on one wall clock
(``time.time()`` in the same machine); ``zero`` is when the guard started the command.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Worker:
    index: int  # by start: 0 = oldest
    pid: int
    outcome: str  # the workload's words: "finished", "killed by SIGKILL", "exited 3"
    progress: int  # units done
    planned: int  # units of a finished worker
    ended_at: float | None = None


@dataclass(frozen=True)
class Victim:
    """A process the guard chose (in a dry run it chose, but signalled nobody)."""

    pid: int
    signal: str | None
    memory_bytes: int
    detected_at: float  # seconds after zero
    detection_to_signal: float | None
    detection_to_exit: float | None


@dataclass(frozen=True)
class Decision:
    detected_at: float  # seconds after zero
    trigger: str
    usage_bytes: int
    amount_to_free_bytes: int
    victim_pids: tuple[int, ...]


@dataclass(frozen=True)
class LogRecord:
    at: float  # wall clock
    msg: str
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunResults:
    dry_run: bool
    memory_high_bytes: int
    memory_max_bytes: int | None
    buffer_bytes: int
    oom_kills: int
    zero: float  # wall clock when the guard started the command
    workers: tuple[Worker, ...]
    victims: tuple[Victim, ...] = ()
    decisions: tuple[Decision, ...] = ()
    reliefs: tuple[float, ...] = ()  # seconds after zero: usage back under memory.high
    samples: tuple[tuple[float, int], ...] = ()  # (seconds after zero, memory.current)


def parse_timestamp(text: str) -> float:
    """``2026-12-01T22:08:04.379Z`` -> seconds since the epoch."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def parse_log(lines: Iterable[str]) -> list[LogRecord]:
    """The guard's JSON log lines; anything else in the file (the workload's own output) is
    skipped."""
    records = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict) or "ts" not in obj or "msg" not in obj:
            continue
        rest = {k: v for k, v in obj.items() if k not in ("ts", "msg", "level", "logger")}
        records.append(LogRecord(parse_timestamp(str(obj["ts"])), str(obj["msg"]), rest))
    return records


START_MESSAGE = "guarding command"
RELIEF_MESSAGE = "usage back under target"


def parse_workers(data: Mapping[str, Any]) -> tuple[Worker, ...]:
    return tuple(
        Worker(
            index=int(w["index"]),
            pid=int(w["pid"]),
            outcome=str(w.get("outcome", "unknown")),
            progress=int(w.get("progress", 0)),
            planned=int(w.get("planned", 0)),
            ended_at=w.get("ended_at"),
        )
        for w in data.get("workers", [])
    )


def parse_run(
    report: Mapping[str, Any],
    workers: Mapping[str, Any],
    log: Sequence[LogRecord],
    samples: Sequence[tuple[float, int]] = (),
) -> RunResults:
    """Everything one run left, on one clock. ``samples`` carry wall-clock times."""
    starts = [r.at for r in log if r.msg == START_MESSAGE]
    first_sample = samples[0][0] if samples else 0.0
    zero = starts[0] if starts else first_sample
    settings = report.get("settings", {})
    final = report.get("memory_events", {}).get("final", {})
    return RunResults(
        dry_run=bool(settings.get("dry_run", False)),
        memory_high_bytes=int(settings.get("memory_high_bytes", 0)),
        memory_max_bytes=settings.get("memory_max_bytes"),
        buffer_bytes=int(settings.get("buffer_bytes", 0)),
        oom_kills=int(final.get("oom_kill", 0)),
        zero=zero,
        workers=tuple(
            Worker(w.index, w.pid, w.outcome, w.progress, w.planned, _minus(w.ended_at, zero))
            for w in parse_workers(workers)
        ),
        victims=tuple(
            Victim(
                pid=int(v["pid"]),
                signal=v.get("signal"),
                memory_bytes=int(v.get("memory_bytes") or 0),
                detected_at=float(v.get("detected_at_seconds") or 0.0),
                detection_to_signal=v.get("detection_to_signal_seconds"),
                detection_to_exit=v.get("detection_to_exit_seconds"),
            )
            for v in report.get("victims", [])
        ),
        decisions=tuple(
            Decision(
                detected_at=float(d.get("detected_at_seconds") or 0.0),
                trigger=str(d.get("trigger", "")),
                usage_bytes=int(d.get("usage_bytes") or 0),
                amount_to_free_bytes=int(d.get("amount_to_free_bytes") or 0),
                victim_pids=tuple(int(p) for p in d.get("victim_pids", [])),
            )
            for d in report.get("decisions", [])
            if d.get("outcome") == "victims"
        ),
        reliefs=tuple(r.at - zero for r in log if r.msg == RELIEF_MESSAGE),
        samples=tuple((t - zero, b) for t, b in samples),
    )


def _minus(value: float | None, zero: float) -> float | None:
    return None if value is None else value - zero
