"""The shared step: look, plan, act, record in that order; the lock held while looking,
planning and recording, never while acting (an eviction can take seconds)."""

from __future__ import annotations

import threading

from oomguard.monitor.decision.newest_first import Decision, Outcome
from oomguard.monitor.modes.step_target import run_step
from oomguard.monitor.triggers.trigger import StepTrigger

DECISION = Decision(Outcome.NOTHING_TO_FREE, 0, "test")


class Recorder:
    """A target that notes each phase, whether the lock was held then, and what it got."""

    def __init__(self, lock: threading.Lock | None, look: object | None = "look") -> None:
        self.lock = lock
        self.result = look
        self.phases: list[tuple[str, bool | None]] = []
        self.seen: list[object] = []

    def _held(self) -> bool | None:
        return None if self.lock is None else self.lock.locked()

    def look(self, now: float) -> object | None:
        self.phases.append(("look", self._held()))
        self.seen.append(now)
        return self.result

    def plan(self, look, trigger, detected_at, now):
        self.phases.append(("plan", self._held()))
        self.seen += [look, trigger, detected_at, now]
        return "plan"

    def act(self, plan):
        self.phases.append(("act", self._held()))
        self.seen.append(plan)
        return "done"

    def record(self, look, plan, done, trigger, detected_at):
        self.phases.append(("record", self._held()))
        self.seen += [look, plan, done]
        return DECISION


def test_phases_run_in_order_and_only_the_actions_run_without_the_lock():
    lock = threading.Lock()
    target = Recorder(lock)
    decision = run_step(target, StepTrigger.EVENT, 5.0, lambda: 7.0, lock)
    assert decision is DECISION
    assert target.phases == [("look", True), ("plan", True), ("act", False), ("record", True)]
    assert not lock.locked()


def test_each_phase_gets_what_the_one_before_made():
    target = Recorder(None)
    run_step(target, StepTrigger.THRESHOLD, 5.0, lambda: 7.0)
    assert target.seen == [
        7.0,  # look: now
        "look", StepTrigger.THRESHOLD, 5.0, 7.0,  # plan: the look, the trigger, detected, now
        "plan",  # act: the plan
        "look", "plan", "done",  # record: all three
    ]  # fmt: skip


def test_a_failed_look_ends_the_step_with_nothing_planned_or_done():
    lock = threading.Lock()
    target = Recorder(lock, look=None)
    assert run_step(target, StepTrigger.RECHECK, None, lambda: 1.0, lock) is None
    assert target.phases == [("look", True)]
    assert not lock.locked()


def test_without_a_lock_every_phase_runs_unlocked():
    target = Recorder(None)
    run_step(target, StepTrigger.EVENT, 1.0, lambda: 2.0)
    assert [phase for phase, _ in target.phases] == ["look", "plan", "act", "record"]
