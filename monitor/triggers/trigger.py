"""The one message every monitor sends (something crossed a line, decide now) and the
contract every monitor keeps."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Protocol

from oomguard.monitor.runtime.stop_signal import StopSignal


class TriggerKind(Enum):
    EVENT = "event"  # memory.events `high` rose (inotify)
    THRESHOLD = "threshold"  # polled usage above the limit
    PRESSURE = "pressure"  # PSI trigger fired (POLLPRI)


class StepTrigger(StrEnum):
    """What one step of a loop answers: the monitor that notices first by design among those
    that fired (members in that order: event, pressure, threshold), or the loop's own
    re-check (its timer, a wake-up) when none did. Metrics, logs and status all speak this."""

    EVENT = "event"
    PRESSURE = "pressure"
    THRESHOLD = "threshold"
    RECHECK = "recheck"

    @classmethod
    def of(cls, kinds: Iterable[TriggerKind]) -> StepTrigger:
        """The step trigger for the kinds of the triggers one wake-up brought."""
        present = {kind.value for kind in kinds}
        return next((step for step in cls if step.value in present), cls.RECHECK)

    @classmethod
    def parse(cls, text: str) -> StepTrigger:
        """From text (a command line, a test): a member's value, several joined by commas
        (``event,threshold``), or ``timer``, the node agent's former name for the re-check.
        ``ValueError`` for anything else."""
        parts = {part.strip() for part in text.split(",") if part.strip()}
        if not parts:
            raise ValueError(f"not a trigger kind: {text!r}")
        steps = {cls.RECHECK if part == "timer" else cls(part) for part in parts}
        return min(steps, key=list(cls).index)


@dataclass(frozen=True)
class Trigger:
    kind: TriggerKind
    detected_at: float  # time.monotonic() when the monitor noticed
    detail: dict[str, int] = field(default_factory=dict)  # e.g. {"high": 12} or {"usage": ...}
    # called by the loop when a step takes this trigger (the event monitor sleeps until then)
    on_consumed: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    def consumed(self) -> None:
        if self.on_consumed is not None:
            self.on_consumed()


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


class MonitorTargetGone(MonitorError):
    """The watched cgroup was removed. For a loop whose target may end (the sidecar's
    workload container) that is the end of the work, not a fault."""
