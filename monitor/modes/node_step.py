"""One step of the node agent, the pods of a node as the shared step's target
(``step_target.py``), in the order the module docstring of ``node_agent.py`` lists:
re-assert kubepods ``memory.high`` and measure the node (look), the kill fallback or one
newest-first decision (plan), evictions or ``cgroup.kill`` (act), then each victim's outcome,
the planner's memory and the ``MemoryPressure`` condition (record).

The plan is made under the agent's lock, the evictions and their backoff sleeps run without
it (API calls can take seconds), and their results are recorded under it again, so
``/status`` and a settings reload never wait on the API server."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Protocol

from oomguard.monitor.actions.outcome import Outcome
from oomguard.monitor.decision.memory_pressure import PressureState, evicting, observe
from oomguard.monitor.decision.newest_first import Decision
from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError
from oomguard.monitor.kernel.parse_error import ParseError
from oomguard.monitor.kube.pod_candidates import ProtectionRules
from oomguard.monitor.modes.node_evictions import Done, EvictionRound, NodeEvictions
from oomguard.monitor.modes.node_look import NodeLook
from oomguard.monitor.modes.node_measurer import Measurement, NodeMeasurer, PodSnapshots
from oomguard.monitor.modes.node_options import AgentOptions
from oomguard.monitor.modes.pod_view_keeper import PodViewKeeper
from oomguard.monitor.modes.step_target import run_step
from oomguard.monitor.triggers.trigger import StepTrigger
from oomguard.wire.node_settings import NodeSettings

# what puts the node under MemoryPressure: memory freed by force (a dry run frees nothing)
_FREED = (Outcome.EVICTED, Outcome.KILLED)


class StepSource(Protocol):
    """What a step reads of the node agent and its units."""

    @property
    def options(self) -> AgentOptions: ...

    @property
    def settings(self) -> NodeSettings: ...

    kubepods: Cgroup
    measurer: NodeMeasurer
    look: NodeLook
    pod_view: PodViewKeeper
    evictions: NodeEvictions
    pods: PodSnapshots

    def rules(self) -> ProtectionRules: ...

    def limit_bytes(self) -> int: ...

    def target_bytes(self) -> int: ...

    def assert_memory_high(self) -> None: ...


class NodeStep:
    def __init__(
        self,
        agent: StepSource,
        lock: threading.Lock,
        clock: Callable[[], float],
        error: Callable[[str], None],
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._agent = agent
        self._lock = lock
        self._clock = clock
        self._error = error
        self._changed = changed  # wakes the status reporter
        self.pressure = PressureState()  # NodeMemoryReserve's MemoryPressure condition

    def measure(self, now: float) -> Measurement:
        """One look at the node; pods blocked by a PDB a moment ago count as protected.
        While the pod view is blind, pod cgroups without a pod object are kill-only
        candidates once usage reaches the guarded line (``kube/pod_view.py``)."""
        a = self._agent
        line = a.limit_bytes() if a.pod_view.blind(now) else None
        m = a.measurer.measure(a.rules(), a.settings.eviction.policy, line)
        return dataclasses.replace(
            m, candidates=a.evictions.planner.with_blocked(m.candidates, now)
        )

    def run(self, trigger: StepTrigger, detected_at: float | None) -> Decision | None:
        """One look and, if needed, one decision and its actions (``step_target.run_step``);
        None when measuring failed or the last resort acted."""
        return run_step(self, trigger, detected_at, self._clock, self._lock)

    # -- the phases of a step (step_target.StepTarget) -------------------------------------

    def look(self, now: float) -> Measurement | None:
        """memory.high re-asserted and the node measured; None (and why, for status and the
        CRD) when kubepods cannot be read."""
        a = self._agent
        try:
            a.assert_memory_high()
            m = self.measure(now)
        except (CgroupError, ParseError, OSError, ValueError) as exc:
            self._error(a.look.failed(now, f"cannot measure {a.kubepods.path}: {exc}"))
            return None
        a.look.saw(now, m)
        a.pod_view.looked(m, now)
        a.evictions.planner.forget_gone(m.alive)
        return m

    def plan(
        self, look: Measurement, trigger: StepTrigger, detected_at: float | None, now: float
    ) -> EvictionRound:
        """The decision and its eviction walk, or the last resort's kills. Evictions or kills
        to come put the node under MemoryPressure now, and the status reporter is woken: its
        write (and the operator's taint after it) races the evicted pods' replacements, so it
        starts before the first eviction, not after the last answer."""
        a = self._agent
        planned = a.evictions.plan(
            trigger,
            detected_at,
            now,
            look,
            a.settings,
            a.limit_bytes(),
            a.target_bytes(),
            a.pods.connected,
            a.options.cgroup_root,
        )
        if (planned.walk or planned.kills) and not a.settings.dry_run:
            self.pressure = evicting(self.pressure, now)
            self._changed()
        return planned

    def act(self, plan: EvictionRound) -> tuple[Done, int] | None:
        """Evictions (API calls, backoff sleeps) or the last resort; without the lock."""
        return self._agent.evictions.act(plan)

    def record(
        self,
        look: Measurement,
        plan: EvictionRound,
        done: tuple[Done, int] | None,
        trigger: StepTrigger,
        detected_at: float | None,
    ) -> Decision | None:
        """What happened to each victim, the planner's memory, and MemoryPressure."""
        a = self._agent
        if done is not None:
            a.evictions.record(plan, *done)
        a.evictions.step_done(plan, detected_at)
        freed = sum(r.outcome in _FREED for r, _ in done[0]) if done is not None else 0
        self.pressure = observe(
            self.pressure,
            self._clock(),
            freed=freed,
            episode=a.evictions.planner.hold_triggers(look.alive),
            cooldown=a.settings.eviction.pressure_cooldown_seconds,
        )
        return plan.decision
