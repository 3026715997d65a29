"""The one queue a decision loop blocks on: monitors' triggers and failures, and wake-ups.

Both loops (the guard's, ``modes/guard.py``, and the node agent's, ``modes/node_agent.py``)
have the same shape: monitors run under a :class:`MonitorRunner` and feed a queue; the loop
waits for the next item (or a timeout: its own re-check), drains whatever else is pending
(notifications coalesce, one decision answers all of them) and decides once. This is that
shared part; what a wake-up means (which kind, whether to step) stays with each loop.

Spacing: a step measures everything (every candidate's /proc, every pod cgroup), and under a
storm memory.events ``high`` rises hundreds of times a second, mostly while the loop is only
waiting for its last victims to exit. So while an episode lasts (the loop says ``hold``: its
last step still had something to free, or its victims are still exiting), a trigger that
arrives less than ``min_spacing`` after the loop came back for more is held until that much
time has passed, together with everything else that arrives meanwhile: at most one step per
``min_spacing``. Once the loop found nothing left to free and its victims gone, a trigger is
handed over at once: a new breach after relief is answered without waiting. So is a trigger
after a quiet spell (the loop has been waiting at least ``min_spacing``), and ``wake()``
(stop, new settings) is never held.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.monitor.triggers.factory import MonitorFailure, MonitorRunner
from oomguard.monitor.triggers.trigger import Monitor, StepTrigger, Trigger, TriggerKind


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
    def kinds(self) -> frozenset[TriggerKind]:
        """The kinds of the triggers this wake-up brought (empty without triggers)."""
        return frozenset(t.kind for t in self.triggers)

    @property
    def step_trigger(self) -> StepTrigger:
        """What a step taken for this wake-up answers (RECHECK without triggers)."""
        return StepTrigger.of(self.kinds)


class TriggerInbox:
    def __init__(
        self, min_spacing: float = 0.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        # Trigger | MonitorFailure from a runner; None from wake()
        self.queue: queue.Queue[Any] = queue.Queue()
        self.min_spacing = min_spacing
        self._clock = clock
        self._handed_out = False  # a wake-up was returned before: the loop has stepped

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

    def next(self, timeout: float | None, hold: bool = True) -> Wakeup:
        """Block for the next item (``timeout`` None: forever), then drain the rest.

        With ``hold`` (an episode lasts; see the module doc), items that arrive within
        ``min_spacing`` of this call (i.e. of the end of the loop's last step) are held until
        then and handed over as one wake-up; see the module doc.
        """
        called_at = self._clock()
        hold = hold and self._handed_out and self.min_spacing > 0
        self._handed_out = True
        try:
            items = [self.queue.get(timeout=timeout)]
        except queue.Empty:
            return Wakeup(timed_out=True)
        self._drain_into(items)
        release_at = called_at + self.min_spacing
        while hold and None not in items:
            remaining = release_at - self._clock()
            if remaining <= 0:
                break
            try:
                items.append(self.queue.get(timeout=remaining))
            except queue.Empty:
                break
            self._drain_into(items)
        triggers = tuple(i for i in items if isinstance(i, Trigger))
        for trigger in triggers:  # taken: their monitors may read again
            trigger.consumed()
        return Wakeup(
            triggers=triggers,
            failures=tuple(i for i in items if isinstance(i, MonitorFailure)),
            woken=any(i is None for i in items),
        )

    def _drain_into(self, items: list[Any]) -> None:
        while True:
            try:
                items.append(self.queue.get_nowait())
            except queue.Empty:
                return
