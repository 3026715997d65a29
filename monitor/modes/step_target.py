"""One step of the shared loop (``step_loop.py``), and what it asks of the mode's target:
look, plan, act, record, in that order. Two targets implement it: the processes of a cgroup,
signalled (``guard_step.py``: the process guard and the sidecar) and the pods of a node,
evicted (``node_step.py``: the node agent).

The look and the plan happen under ``lock``, the actions without it, and the results are
recorded under it again: an eviction is an API call that can take seconds, and whatever
shares the lock (``/status``, a settings reload) must not wait on it. Each target carries
its own types through the phases, so nothing is lost on the way: an eviction has an outcome
per victim (evicted, blocked by a PDB, 429, unreachable, stuck) that the node records and
remembers, while a signal only has the time it was sent."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from oomguard.monitor.decision.newest_first import Decision
from oomguard.monitor.triggers.trigger import StepTrigger

LookT = TypeVar("LookT")
PlanT = TypeVar("PlanT")
DoneT = TypeVar("DoneT")


class StepTarget(Protocol[LookT, PlanT, DoneT]):
    def look(self, now: float) -> LookT | None:
        """Measure usage and candidates; None when that failed (the target says why)."""

    def plan(
        self, look: LookT, trigger: StepTrigger, detected_at: float | None, now: float
    ) -> PlanT:
        """The decision (pure, ``decision/``) and what to do about it, with the state the
        next step needs (in flight, backoff) updated."""

    def act(self, plan: PlanT) -> DoneT:
        """Stop the victims the plan chose (signals, or evictions and the last resort)."""

    def record(
        self,
        look: LookT,
        plan: PlanT,
        done: DoneT,
        trigger: StepTrigger,
        detected_at: float | None,
    ) -> Decision | None:
        """Feedback: logs, metrics, reports, what the next step must remember; the step's
        decision (None: the plan had none, e.g. the last resort acted instead)."""


def run_step(
    target: StepTarget[LookT, PlanT, DoneT],
    trigger: StepTrigger,
    detected_at: float | None,
    clock: Callable[[], float],
    lock: threading.Lock | None = None,
) -> Decision | None:
    """Look and plan under ``lock``, act without it, record under it; None when the look
    failed. ``detected_at``: when the trigger was noticed (None: the loop's own tick)."""
    held: contextlib.AbstractContextManager[object] = (
        lock if lock is not None else contextlib.nullcontext()
    )
    with held:
        now = clock()
        look = target.look(now)
        if look is None:
            return None
        plan = target.plan(look, trigger, detected_at, now)
    done = target.act(plan)
    with held:
        return target.record(look, plan, done, trigger, detected_at)
