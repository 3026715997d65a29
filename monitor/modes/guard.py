"""The process guard as a mode of the shared loop (``step_loop.py``), for one cgroup:
monitors -> step (``guard_step.py``: measure, decide, act, feedback).

Monitors run in their own threads (:class:`MonitorRunner`) and drop :class:`Trigger` s
into a queue. Which ones: the event monitor (inotify on memory.events, reacts within
milliseconds of crossing memory.high) and the threshold monitor (working set polled
against the target; the only detector in dry-run, where no memory.high is set). The loop
wakes on a trigger, drains the queue (notifications coalesce; one decision answers all of
them) and takes one step.

An episode is open while the last decision was not "nothing to free". Then steps are spaced
at least ``recheck_interval`` apart (the inbox holds and coalesces triggers that arrive
sooner), and the loop re-checks every ``recheck_interval`` without waiting for a trigger:
that is the feedback path that notices victims have gone and usage is back under target, or
that more must go once the in-flight wait ends. Once a step found nothing to free and the
victims gone, or after a quiet spell, a trigger is handled at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from oomguard.monitor.actions.process_target import THROTTLED_PATIENCE, ProcessTarget
from oomguard.monitor.decision.newest_first import Decision, Limits
from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.feedback.metrics_registry import GuardMetrics
from oomguard.monitor.feedback.report import DecisionRecord
from oomguard.monitor.kernel.cgroupfs import Cgroup
from oomguard.monitor.modes.guard_step import GuardStep
from oomguard.monitor.modes.step_loop import run_loop
from oomguard.monitor.modes.step_target import run_step
from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.monitor.triggers.factory import MonitorConfig, MonitorFailure, MonitorRunner
from oomguard.monitor.triggers.kinds.event import EVENT
from oomguard.monitor.triggers.monitor_kind import GuardFacts
from oomguard.monitor.triggers.monitor_registry import guard_config, guard_names
from oomguard.monitor.triggers.trigger import Monitor, MonitorTargetGone, StepTrigger
from oomguard.monitor.triggers.trigger_inbox import TriggerInbox, Wakeup

THRESHOLD_INTERVAL = 0.1  # seconds between polls where the threshold monitor is the guard
BACKUP_INTERVAL = 1.0  # ... where it backs up the event monitor

log = logging.getLogger("oomguard.guard")

RECHECK = StepTrigger.RECHECK


@dataclass(frozen=True)
class GuardSettings:
    memory_high: int
    memory_max: int | None
    buffer: int
    grace: float
    in_flight_timeout: float
    dry_run: bool = False
    # a victim asleep in memory.high's throttling penalty this long is SIGKILLed before its
    # grace ends (decision/throttled_victims.py); only where memory.high is written
    throttled_grace: float = THROTTLED_PATIENCE
    recheck_interval: float = 0.1
    # None: THRESHOLD_INTERVAL where the threshold monitor is the guard, BACKUP_INTERVAL
    # where the event monitor watches the same line (``threshold_poll_seconds``)
    threshold_interval: float | None = None
    # the monitors asked for, by name (``--monitors``; every kind with a guard rule)
    monitor_names: frozenset[str] = frozenset(guard_names())
    set_memory_high: bool = True  # off: --memory-high is only the threshold, no throttling
    # on: the guarded cgroup's removal is the work's end (the sidecar's workload container
    # exits), logged as such, not an error
    target_may_end: bool = False

    @property
    def limits(self) -> Limits:
        return Limits(self.memory_high, self.buffer, self.in_flight_timeout)

    @property
    def monitors(self) -> MonitorConfig:
        """What each kind's guard rule makes of these settings (the event monitor only where
        memory.high is written: nothing to cross otherwise). At least one must remain
        (checked by the CLI)."""
        facts = GuardFacts(
            self.monitor_names,
            self.memory_high,
            self.threshold_poll_seconds,
            memory_high_set=self.memory_high_to_write is not None,
        )
        return guard_config(facts)

    @property
    def threshold_poll_seconds(self) -> float:
        """The threshold monitor's period: as asked, else every 0.1 s where it is the guard,
        and every 1 s as the backup of an event monitor on the same line (the kernel wakes
        that one the moment memory.high is crossed, and memory.high throttles meanwhile), so
        an idle guard does not wake ten times a second for nothing."""
        if self.threshold_interval is not None:
            return self.threshold_interval
        event_runs = EVENT.name in self.monitor_names and self.memory_high_to_write is not None
        return BACKUP_INTERVAL if event_runs else THRESHOLD_INTERVAL

    @property
    def memory_high_to_write(self) -> int | None:
        """What memory.high is set to: nothing in dry-run or with set_memory_high off."""
        return self.memory_high if self.set_memory_high and not self.dry_run else None


class Guard:
    """Runs the loop until ``stop`` is set; keeps the decisions for the report."""

    def __init__(
        self,
        cgroup: Cgroup,
        target: ProcessTarget,
        monitors: Sequence[Monitor],
        settings: GuardSettings,
        clock: Callable[[], float] = time.monotonic,
        metrics: GuardMetrics | None = None,
    ) -> None:
        self._monitors = monitors
        self._settings = settings
        self._clock = clock
        # during an episode, at most one measurement per recheck_interval, however often
        # memory.events rises
        self._inbox = TriggerInbox(min_spacing=settings.recheck_interval)
        self._monitors_failed = 0
        self._runner: MonitorRunner | None = None
        self.errors: list[str] = []
        self._steps = GuardStep(
            cgroup,
            target,
            settings.limits,
            clock,
            self._error,
            dry_run=settings.dry_run,
            target_may_end=settings.target_may_end,
            metrics=metrics,
        )

    @property
    def decisions(self) -> list[DecisionRecord]:
        return self._steps.decisions

    def run(self, stop: StopSignal) -> None:
        run_loop(self, self._inbox, stop)

    def victim_exited(self) -> None:
        """A victim is gone (its pidfd said so; any thread): step now rather than at the next
        re-check, so the episode ends, or the next victim is chosen, as soon as it can."""
        self._inbox.wake()

    # -- what the shared loop (step_loop.py) asks of this mode -----------------------------

    def sync_monitors(self) -> None:
        if self._runner is None:
            self._runner = self._inbox.runner(self._monitors)
            self._runner.start()

    def stop_monitors(self) -> None:
        if self._runner is not None:
            self._runner.stop(2.0)

    def wait_for(self) -> tuple[float | None, bool]:
        """Re-check every ``recheck_interval`` while an episode is open (or no monitor is
        left), else wait for a trigger."""
        all_failed = self._monitors_failed >= len(self._monitors)
        polling = self._steps.episode_open or all_failed
        hold = self._steps.hold_triggers()
        return (self._settings.recheck_interval if polling else None), hold

    def monitors_failed(self, failures: Sequence[MonitorFailure]) -> None:
        for failure in failures:
            self._monitors_failed += 1
            message = f"{failure.monitor} monitor stopped: {failure.error}"
            if self._settings.target_may_end and isinstance(failure.error, MonitorTargetGone):
                log_event(log, logging.INFO, message)
            else:
                self._error(message)

    def answer(self, wakeup: Wakeup) -> tuple[StepTrigger, float | None] | None:
        """The earliest detection among pending triggers and its kind; RECHECK when the
        wake-up was the re-check timer; None when only monitor failures arrived."""
        earliest = wakeup.earliest
        if earliest is not None:
            return StepTrigger.of([earliest.kind]), earliest.detected_at
        if wakeup.timed_out or wakeup.woken:
            return RECHECK, self._clock()
        return None

    def run_step(self, trigger: StepTrigger, detected_at: float | None) -> None:
        self.step(self._clock() if detected_at is None else detected_at, trigger)

    def step(self, detected_at: float, trigger_kind: StepTrigger | str) -> Decision | None:
        """One round: measure, decide, act, report (``guard_step.py``). Returns None when
        measuring failed. ``trigger_kind`` may be spelled as text (see
        :meth:`StepTrigger.parse`)."""
        trigger = StepTrigger.parse(trigger_kind)
        return run_step(self._steps, trigger, detected_at, self._clock)

    def _error(self, message: str) -> None:
        self.errors.append(message)
        log_event(log, logging.ERROR, message)
