"""The ``--report`` JSON of ``oomguard guard``: what was killed, how fast, what the kernel saw.

Latencies are the ones we can measure honestly from user space, all on the monotonic clock:
``detection_to_decision`` (monitor noticed -> decision made), ``detection_to_signal`` and
``detection_to_exit`` per victim. The moment the kernel bumped a counter is not visible to
user space (inotify carries no timestamp), so no "kernel event -> detection" figure is
claimed; the event monitor's wake-up is the detection time.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oomguard.monitor.actions.process_target import KillRecord
from oomguard.monitor.triggers.trigger import StepTrigger

REPORT_VERSION = 1


@dataclass(frozen=True)
class DecisionRecord:
    """One decision that chose victims or found none to choose (waits are not recorded)."""

    trigger: StepTrigger
    detected_at: float
    decided_at: float
    outcome: str
    amount_to_free: int
    usage: int
    victim_pids: tuple[int, ...]
    reason: str
    # the decision path, traced (monotonic): the step took the trigger, had measured, had
    # sent every victim its first signal; None where a record does not know
    step_started_at: float | None = None
    measured_at: float | None = None
    signalled_at: float | None = None

    @property
    def detection_to_decision_seconds(self) -> float:
        return self.decided_at - self.detected_at

    @property
    def trace_seconds(self) -> dict[str, float] | None:
        """Where detection -> signal went: waiting for the step (inbox, spacing), measuring,
        deciding, signalling."""
        if self.step_started_at is None or self.measured_at is None:
            return None
        trace = {
            "wait": self.step_started_at - self.detected_at,
            "measure": self.measured_at - self.step_started_at,
            "decide": self.decided_at - self.measured_at,
        }
        if self.signalled_at is not None:
            trace["signal"] = self.signalled_at - self.decided_at
        return trace


@dataclass(frozen=True)
class GuardReport:
    command: tuple[str, ...] | None
    cgroup: str
    memory_high: int
    memory_max: int | None
    buffer: int
    grace: float
    dry_run: bool
    exit_status: int | None
    started_at: float  # monotonic, the zero of relative times
    victims: Sequence[KillRecord] = ()
    decisions: Sequence[DecisionRecord] = ()
    memory_events_start: Mapping[str, int] = field(default_factory=dict)
    memory_events_final: Mapping[str, int] = field(default_factory=dict)
    errors: Sequence[str] = ()


def summarize(values: Iterable[float]) -> dict[str, float | int] | None:
    """count/min/median/p95/max of a sample, or None for no sample."""
    data = sorted(values)
    if not data:
        return None
    p95 = data[min(len(data) - 1, max(0, round(0.95 * len(data)) - 1))]
    return {
        "count": len(data),
        "min": data[0],
        "median": statistics.median(data),
        "p95": p95,
        "max": data[-1],
    }


def _victim(record: KillRecord, zero: float) -> dict[str, Any]:
    return {
        "pid": record.pid,
        "cmdline": list(record.cmdline),
        "start_time_seconds_after_boot": record.started_at,
        "memory_bytes": record.memory_bytes,
        "signal": record.signal,
        "outcome": record.outcome.value,
        "detected_at_seconds": record.detected_at - zero,
        "detection_to_signal_seconds": record.detection_to_signal_seconds,
        "detection_to_exit_seconds": record.detection_to_exit_seconds,
    }


def _decision(record: DecisionRecord, zero: float) -> dict[str, Any]:
    return {
        "trigger": str(record.trigger),
        "detected_at_seconds": record.detected_at - zero,
        "detection_to_decision_seconds": record.detection_to_decision_seconds,
        "trace_seconds": record.trace_seconds,
        "outcome": record.outcome,
        "usage_bytes": record.usage,
        "amount_to_free_bytes": record.amount_to_free,
        "victim_pids": list(record.victim_pids),
        "reason": record.reason,
    }


def report_to_json(report: GuardReport) -> dict[str, Any]:
    """Plain JSON-ready dict (times relative to the guard's start, in seconds)."""
    zero = report.started_at
    signal_latencies = [
        v.detection_to_signal_seconds
        for v in report.victims
        if v.detection_to_signal_seconds is not None
    ]
    exit_latencies = [
        v.detection_to_exit_seconds
        for v in report.victims
        if v.detection_to_exit_seconds is not None
    ]
    return {
        "version": REPORT_VERSION,
        "command": None if report.command is None else list(report.command),
        "cgroup": report.cgroup,
        "settings": {
            "memory_high_bytes": report.memory_high,
            "memory_max_bytes": report.memory_max,
            "buffer_bytes": report.buffer,
            "grace_seconds": report.grace,
            "dry_run": report.dry_run,
        },
        "exit_status": report.exit_status,
        # the zero of every *_at_seconds, on CLOCK_MONOTONIC (to line the report up with
        # other samples of the same machine, e.g. a benchmark's)
        "started_at_monotonic_seconds": report.started_at,
        "victims": [_victim(v, zero) for v in report.victims],
        "decisions": [_decision(d, zero) for d in report.decisions],
        "memory_events": {
            "start": dict(report.memory_events_start),
            "final": dict(report.memory_events_final),
        },
        "latencies_seconds": {
            "detection_to_decision": summarize(
                d.detection_to_decision_seconds for d in report.decisions
            ),
            "detection_to_signal": summarize(signal_latencies),
            "detection_to_exit": summarize(exit_latencies),
        },
        "errors": list(report.errors),
    }


def write_report(path: Path, report: GuardReport) -> None:
    """Write atomically (temp file + rename), so a reader never sees half a report."""
    data = json.dumps(report_to_json(report), indent=2, sort_keys=False) + "\n"
    directory = path.parent if str(path.parent) else Path()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
