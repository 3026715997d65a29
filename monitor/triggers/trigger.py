"""The one message every monitor sends (something crossed a line, decide now) and the
contract every monitor keeps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from oomguard.monitor.triggers.stop_signal import StopSignal


class TriggerKind(Enum):
    EVENT = "event"  # memory.events `high` rose (inotify)
    THRESHOLD = "threshold"  # polled usage above the limit
    PRESSURE = "pressure"  # PSI trigger fired (POLLPRI)


@dataclass(frozen=True)
class Trigger:
    kind: TriggerKind
    detected_at: float  # time.monotonic() when the monitor noticed
    detail: dict[str, int] = field(default_factory=dict)  # e.g. {"high": 12} or {"usage": ...}


TriggerSink = Callable[[Trigger], None]


class Monitor(Protocol):
    """One small class per way of noticing trouble; each runs in its own thread.

    ``run`` blocks until ``stop`` is set (returning within a second) and calls
    ``sink`` for every trigger. It raises ``MonitorError`` (a clear message) when
    it can no longer watch, e.g. the cgroup was removed.
    """

    name: str

    def run(self, sink: TriggerSink, stop: StopSignal) -> None: ...


class MonitorError(RuntimeError):
    """A monitor cannot go on watching; the message says why in plain words."""
