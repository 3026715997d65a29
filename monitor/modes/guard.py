"""The guard loop for one cgroup: monitors -> decide -> act -> feedback.

Monitors run in their own threads (:class:`MonitorRunner`) and drop :class:`Trigger` s
into a queue. Which ones: the event monitor (inotify on memory.events, reacts within
milliseconds of crossing memory.high) and the threshold monitor (working set polled
against the target; the only detector in dry-run, where no memory.high is set). The loop
wakes on a trigger, drains the queue (notifications coalesce; one decision answers all of
them), reads usage and candidates, asks the pure policy, hands victims to the target, and
logs what happened.

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

from oomguard.monitor.actions.process_target import THROTTLED_PATIENCE, ProcessTarget, pid_of
from oomguard.monitor.decision.episode import EpisodeClock, episode_lasts
from oomguard.monitor.decision.measure_plan import first_to_measure, measured_for_decision
from oomguard.monitor.decision.newest_first import Decision, InFlight, Limits, Outcome, decide
from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.feedback.metrics_registry import GuardMetrics
from oomguard.monitor.feedback.report import DecisionRecord
from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError, CgroupGone
from oomguard.monitor.kernel.parse_error import ParseError
from oomguard.monitor.modes.step_loop import run_loop
from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.monitor.triggers.factory import MonitorConfig, MonitorFailure, MonitorRunner
from oomguard.monitor.triggers.kinds.event import EVENT
from oomguard.monitor.triggers.monitor_kind import GuardFacts
from oomguard.monitor.triggers.monitor_registry import guard_config, guard_names
from oomguard.monitor.triggers.trigger import Monitor, MonitorTargetGone, StepTrigger
from oomguard.monitor.triggers.trigger_inbox import TriggerInbox, Wakeup
from oomguard.wire.sizes import format_size

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


@dataclass(frozen=True)
class Trace:
    """One step's decision path (monotonic times), for the report's ``trace_seconds``."""

    detected_at: float
    step_started_at: float
    measured_at: float
    decided_at: float
    signalled_at: float | None


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
        self._cgroup = cgroup
        self._metrics = metrics
        self._target = target
        self._monitors = monitors
        self._settings = settings
        self._clock = clock
        # during an episode, at most one measurement per recheck_interval, however often
        # memory.events rises
        self._inbox = TriggerInbox(min_spacing=settings.recheck_interval)
        self._monitors_failed = 0
        self._runner: MonitorRunner | None = None
        self._in_flight: InFlight | None = None
        self._victims_exiting = False  # the last step still saw victims of a decision
        self._episode_open = False
        self._last_outcome: Outcome | None = None
        self._episodes = EpisodeClock()
        self.decisions: list[DecisionRecord] = []
        self.errors: list[str] = []

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
        polling = self._episode_open or all_failed
        return (self._settings.recheck_interval if polling else None), self._hold_triggers()

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

    def _hold_triggers(self) -> bool:
        """Space steps unless the last one found nothing to free and its victims gone."""
        return episode_lasts(self._last_outcome, self._victims_exiting)

    def step(self, detected_at: float, trigger_kind: StepTrigger | str) -> Decision | None:
        """One round: measure, decide, act, report. Returns None when measuring failed.
        ``trigger_kind`` may be spelled as text (see :meth:`StepTrigger.parse`)."""
        trigger = StepTrigger.parse(trigger_kind)
        started_at = self._clock()
        limits = self._settings.limits
        try:
            # The dying before usage: a victim that exits between the two reads then counts
            # as dying *and* is gone from usage (frees too little this round, the re-check
            # corrects it). The other order counts it in neither and stops an extra process.
            # Only what the decision needs is measured (decision/measure_plan.py).
            listed = self._target.listing()
            first = self._target.measure(
                first_to_measure(listed, limits, started_at, self._in_flight)
            )
            usage = self._cgroup.working_set()
            candidates = measured_for_decision(
                listed, first, usage, limits, started_at, self._in_flight, self._target.measure
            )
        except (CgroupError, ParseError, OSError) as exc:
            if self._settings.target_may_end and isinstance(exc, CgroupGone):
                log_event(log, logging.INFO, f"the guarded cgroup ended: {exc}")
            else:
                self._error(f"cannot measure {self._cgroup.path}: {exc}")
            return None
        measured_at = self._clock()
        # one "now" for the plan and the decision, so both agree on the in-flight timeout
        decision = decide(candidates, usage, limits, started_at, self._in_flight)
        decided_at = self._clock()
        self._in_flight = InFlight.after(decision, decided_at, self._in_flight)
        exiting = self._in_flight.victim_ids if self._in_flight is not None else frozenset()
        self._victims_exiting = any(c.id in exiting for c in candidates)
        self._episode_open = decision.outcome is not Outcome.NOTHING_TO_FREE
        signalled_at = None
        if decision.victims:  # signal first: logs and records can wait, the victims cannot
            self._target.stop(decision.victims, detected_at)
            signalled_at = self._clock()
        trace = Trace(detected_at, started_at, measured_at, decided_at, signalled_at)
        self._feedback(decision, usage, trace, trigger)
        ended = self._episodes.after_step(detected_at, measured_at, self._hold_triggers())
        if self._metrics is not None:
            self._metrics.record_episode(ended)
        if decision.victims and self._metrics is not None:
            self._metrics.record_decision(trigger, len(decision.victims), detected_at, decided_at)
        return decision

    def _feedback(self, decision: Decision, usage: int, trace: Trace, kind: StepTrigger) -> None:
        detected_at, decided_at = trace.detected_at, trace.decided_at
        changed = decision.outcome is not self._last_outcome
        self._last_outcome = decision.outcome
        if decision.outcome is Outcome.VICTIMS or (
            changed and decision.outcome is Outcome.NO_CANDIDATES
        ):
            self.decisions.append(
                DecisionRecord(
                    trigger=kind,
                    detected_at=detected_at,
                    decided_at=decided_at,
                    outcome=decision.outcome.value,
                    amount_to_free=decision.amount_to_free,
                    usage=usage,
                    victim_pids=tuple(pid_of(v) for v in decision.victims),
                    reason=decision.reason,
                    step_started_at=trace.step_started_at,
                    measured_at=trace.measured_at,
                    signalled_at=trace.signalled_at,
                )
            )
        if decision.outcome is Outcome.VICTIMS:
            log_event(
                log,
                logging.WARNING,
                "would stop newest processes (dry run)"
                if self._settings.dry_run
                else "stopping newest processes",
                trigger=kind.value,
                usage=format_size(usage),
                target=format_size(self._settings.memory_high),
                amount_to_free=format_size(decision.amount_to_free),
                victims=[pid_of(v) for v in decision.victims],
                victim_memory=format_size(decision.victim_bytes),
                detection_to_decision_ms=round((decided_at - detected_at) * 1000, 3),
                reason=decision.reason,
            )
        elif decision.outcome is Outcome.NO_CANDIDATES and changed:
            log_event(
                log,
                logging.ERROR,
                "memory must be freed but nobody may be stopped",
                usage=format_size(usage),
                reason=decision.reason,
            )
        elif decision.outcome is Outcome.NOTHING_TO_FREE and changed and len(self.decisions):
            log_event(
                log,
                logging.INFO,
                "usage back under target",
                usage=format_size(usage),
                target=format_size(self._settings.memory_high),
            )

    def _error(self, message: str) -> None:
        self.errors.append(message)
        log_event(log, logging.ERROR, message)
