"""The one message every monitor sends: something crossed a line, decide now."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class TriggerKind(Enum):
    EVENT = "event"  # memory.events `high` rose (inotify)
    THRESHOLD = "threshold"  # polled usage above the limit
    PRESSURE = "pressure"  # PSI trigger fired (POLLPRI)


@dataclass(frozen=True)
class Trigger:
    kind: TriggerKind
    detected_at: float  # time.monotonic() when the monitor noticed
    detail: dict[str, int] = field(default_factory=dict)  # e.g. {"high": 12} or {"usage": ...}
