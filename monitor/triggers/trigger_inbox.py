"""The one queue a decision loop blocks on: monitors' triggers and failures, and wake-ups.

Both loops (the guard's, ``modes/guard.py``, and the node agent's, ``modes/node_agent.py``)
have the same shape: monitors run under a :class:`MonitorRunner` and feed a queue; the loop
waits for the next item (or a timeout: its own re-check), drains whatever else is pending
(notifications coalesce, one decision answers all of them) and decides once. This is that
shared part; what a wake-up means (which kind, whether to step) stays with each loop.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from oomguard.monitor.triggers.factory import MonitorFailure, MonitorRunner
from oomguard.monitor.triggers.stop_signal import StopSignal
from oomguard.monitor.triggers.trigger import Monitor, Trigger


@dataclass(frozen=True)
class Wakeup:
    """Everything one wake-up of the loop brought."""

    triggers: tuple[Trigger, ...] = ()
    failures: tuple[MonitorFailure, ...] = ()
    timed_out: bool = False  # nothing arrived within the timeout
    woken: bool = False  # someone called wake() (stop, new settings)

    @property
    def earliest(self) -> Trigger | None:
        return min(self.triggers, key=lambda t: t.detected_at) if self.triggers else None

    @property
    def kinds(self) -> str | None:
        """The trigger kinds, sorted and joined (``event,threshold``); None without triggers."""
        return ",".join(sorted({t.kind.value for t in self.triggers})) or None


class TriggerInbox:
    def __init__(self) -> None:
        # Trigger | MonitorFailure from a runner; None from wake()
        self.queue: queue.Queue[Any] = queue.Queue()

    def runner(self, monitors: Sequence[Monitor]) -> MonitorRunner:
        """A (not yet started) runner whose monitors deliver here."""
        return MonitorRunner(monitors, self.queue)

    def sink(self, trigger: Trigger) -> None:
        self.queue.put(trigger)

    def wake(self) -> None:
        self.queue.put(None)

    def wake_on(self, stop: StopSignal) -> threading.Thread:
        """Wake the loop as soon as ``stop`` is set (so it never waits out a timeout)."""

        def wait_then_wake() -> None:
            stop.wait()
            self.wake()

        thread = threading.Thread(target=wait_then_wake, name="inbox-waker", daemon=True)
        thread.start()
        return thread

    def next(self, timeout: float | None) -> Wakeup:
        """Block for the next item (``timeout`` None: forever), then drain the rest."""
        try:
            items = [self.queue.get(timeout=timeout)]
        except queue.Empty:
            return Wakeup(timed_out=True)
        while True:
            try:
                items.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return Wakeup(
            triggers=tuple(i for i in items if isinstance(i, Trigger)),
            failures=tuple(i for i in items if isinstance(i, MonitorFailure)),
            woken=any(i is None for i in items),
        )
