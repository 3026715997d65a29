"""The one loop of both the process guard and the node agent: wait on the inbox, take what
the wake-up brought, step, repeat until stopped.

What differs between the two lives behind :class:`LoopMode`: how long to wait and whether
an episode holds triggers (the rule itself is ``decision/episode.py``), what a wake-up
means (which trigger a step answers, and whether to step at all), the step (measure, plan,
act, feedback) and which monitors run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.monitor.triggers.factory import MonitorFailure
from oomguard.monitor.triggers.trigger import StepTrigger
from oomguard.monitor.triggers.trigger_inbox import TriggerInbox, Wakeup


class LoopMode(Protocol):
    def sync_monitors(self) -> None:
        """Start the monitors (at the start, and after each step: they may have changed)."""

    def stop_monitors(self) -> None: ...

    def wait_for(self) -> tuple[float | None, bool]:
        """How long to wait for a trigger (None: until one comes), and whether to hold
        triggers because an episode lasts."""

    def monitors_failed(self, failures: Sequence[MonitorFailure]) -> None: ...

    def answer(self, wakeup: Wakeup) -> tuple[StepTrigger, float | None] | None:
        """What a step for this wake-up answers and when it was detected; None: no step."""

    def run_step(self, trigger: StepTrigger, detected_at: float | None) -> None:
        """One step: measure, plan, act, feedback."""


def run_loop(mode: LoopMode, inbox: TriggerInbox, stop: StopSignal) -> None:
    """Until ``stop`` is set (it wakes the inbox, so no wait outlasts it); the monitors are
    stopped and ``stop`` set on every way out."""
    inbox.wake_on(stop)
    try:
        mode.sync_monitors()
        while not stop.is_set():
            timeout, hold = mode.wait_for()
            wakeup = inbox.next(timeout, hold=hold)
            if stop.is_set():
                break
            mode.monitors_failed(wakeup.failures)
            answer = mode.answer(wakeup)
            if answer is not None:
                mode.run_step(*answer)
            mode.sync_monitors()
    finally:
        stop.set()
        mode.stop_monitors()
