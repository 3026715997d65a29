"""One step of the process guard, the processes of a cgroup as the shared step's target
(``step_target.py``): list and measure them (look), one newest-first decision with the
in-flight rule (plan), SIGTERM to the victims through pidfds (act), then the decision
record, its log line, metrics and the episode (record).

Signals go out before anything is written down: logs and records can wait, the victims
cannot. What the next step needs (the victims in flight, whether they are still there,
the last outcome) is kept here; the loop's side (``guard.py``) reads whether an episode
lasts from it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from oomguard.monitor.actions.process_target import ProcessTarget, pid_of
from oomguard.monitor.decision.candidate import Candidate
from oomguard.monitor.decision.episode import EpisodeClock, episode_lasts
from oomguard.monitor.decision.measure_plan import first_to_measure, measured_for_decision
from oomguard.monitor.decision.newest_first import Decision, InFlight, Limits, Outcome, decide
from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.feedback.metrics_registry import GuardMetrics
from oomguard.monitor.feedback.report import DecisionRecord
from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError, CgroupGone
from oomguard.monitor.kernel.parse_error import ParseError
from oomguard.monitor.triggers.trigger import StepTrigger
from oomguard.wire.sizes import format_size

log = logging.getLogger("oomguard.guard")


@dataclass(frozen=True)
class ProcessLook:
    usage: int  # the cgroup's working set
    candidates: list[Candidate]  # measured as far as the decision needs
    started_at: float  # monotonic, as every time below
    measured_at: float


@dataclass(frozen=True)
class ProcessPlan:
    decision: Decision
    detected_at: float
    decided_at: float


class GuardStep:
    def __init__(
        self,
        cgroup: Cgroup,
        target: ProcessTarget,
        limits: Limits,
        clock: Callable[[], float],
        error: Callable[[str], None],
        *,
        dry_run: bool = False,
        target_may_end: bool = False,
        metrics: GuardMetrics | None = None,
    ) -> None:
        """``target_may_end``: the cgroup's removal is the work's end (the sidecar's
        workload container exits), logged as such, not an error."""
        self._cgroup = cgroup
        self._target = target
        self._limits = limits
        self._clock = clock
        self._error = error
        self._dry_run = dry_run
        self._target_may_end = target_may_end
        self._metrics = metrics
        self._in_flight: InFlight | None = None
        self._victims_exiting = False  # the last step still saw victims of a decision
        self.episode_open = False  # the last decision was not "nothing to free"
        self._last_outcome: Outcome | None = None
        self._episodes = EpisodeClock()
        self.decisions: list[DecisionRecord] = []

    def hold_triggers(self) -> bool:
        """Space steps unless the last one found nothing to free and its victims gone."""
        return episode_lasts(self._last_outcome, self._victims_exiting)

    # -- the phases of a step (step_target.StepTarget) -------------------------------------

    def look(self, now: float) -> ProcessLook | None:
        # The dying before usage: a victim that exits between the two reads then counts
        # as dying *and* is gone from usage (frees too little this round, the re-check
        # corrects it). The other order counts it in neither and stops an extra process.
        # Only what the decision needs is measured (decision/measure_plan.py).
        limits, target = self._limits, self._target
        try:
            listed = target.listing()
            first = target.measure(first_to_measure(listed, limits, now, self._in_flight))
            usage = self._cgroup.working_set()
            candidates = measured_for_decision(
                listed, first, usage, limits, now, self._in_flight, target.measure
            )
        except (CgroupError, ParseError, OSError) as exc:
            if self._target_may_end and isinstance(exc, CgroupGone):
                log_event(log, logging.INFO, f"the guarded cgroup ended: {exc}")
            else:
                self._error(f"cannot measure {self._cgroup.path}: {exc}")
            return None
        return ProcessLook(usage, candidates, now, self._clock())

    def plan(
        self, look: ProcessLook, trigger: StepTrigger, detected_at: float | None, now: float
    ) -> ProcessPlan:
        # one "now" for the plan and the decision, so both agree on the in-flight timeout
        decision = decide(look.candidates, look.usage, self._limits, now, self._in_flight)
        decided_at = self._clock()
        self._in_flight = InFlight.after(decision, decided_at, self._in_flight)
        exiting = self._in_flight.victim_ids if self._in_flight is not None else frozenset()
        self._victims_exiting = any(c.id in exiting for c in look.candidates)
        self.episode_open = decision.outcome is not Outcome.NOTHING_TO_FREE
        detected = now if detected_at is None else detected_at
        return ProcessPlan(decision, detected, decided_at)

    def act(self, plan: ProcessPlan) -> float | None:
        """SIGTERM now (SIGKILL after the grace, in the target's own thread); when sent."""
        if not plan.decision.victims:
            return None
        self._target.stop(plan.decision.victims, plan.detected_at)
        return self._clock()

    def record(
        self,
        look: ProcessLook,
        plan: ProcessPlan,
        done: float | None,
        trigger: StepTrigger,
        detected_at: float | None,
    ) -> Decision:
        decision, detected = plan.decision, plan.detected_at
        self._feedback(look, plan, done, trigger)
        ended = self._episodes.after_step(detected, look.measured_at, self.hold_triggers())
        if self._metrics is not None:
            self._metrics.record_episode(ended)
            if decision.victims:
                victims = len(decision.victims)
                self._metrics.record_decision(trigger, victims, detected, plan.decided_at)
        return decision

    def _feedback(
        self, look: ProcessLook, plan: ProcessPlan, signalled_at: float | None, kind: StepTrigger
    ) -> None:
        """The decision record (its path's times: the report's ``trace_seconds``), the log."""
        decision, usage = plan.decision, look.usage
        detected_at, decided_at = plan.detected_at, plan.decided_at
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
                    step_started_at=look.started_at,
                    measured_at=look.measured_at,
                    signalled_at=signalled_at,
                )
            )
        if decision.outcome is Outcome.VICTIMS:
            log_event(
                log,
                logging.WARNING,
                "would stop newest processes (dry run)"
                if self._dry_run
                else "stopping newest processes",
                trigger=kind.value,
                usage=format_size(usage),
                target=format_size(self._limits.target),
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
                target=format_size(self._limits.target),
            )
