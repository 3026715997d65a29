"""The node agent as a mode of the shared loop (``step_loop.py``): a tick at the latest
while a threshold monitor runs or an episode lasts (else it sleeps until a trigger comes),
triggers held while an episode lasts, a step for every wake-up, monitors re-planned after
each step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from oomguard.monitor.decision.newest_first import Decision
from oomguard.monitor.modes.monitor_supervisor import MonitorPlan, MonitorSupervisor
from oomguard.monitor.modes.node_evictions import NodeEvictions
from oomguard.monitor.modes.node_measurer import Measurement
from oomguard.monitor.modes.node_options import AgentOptions
from oomguard.monitor.triggers.factory import MonitorFailure
from oomguard.monitor.triggers.monitor_registry import polled as monitors_polled
from oomguard.monitor.triggers.trigger import StepTrigger
from oomguard.monitor.triggers.trigger_inbox import Wakeup


class Agent(Protocol):
    """What the loop needs of the node agent."""

    @property
    def options(self) -> AgentOptions: ...

    @property
    def last(self) -> Measurement | None: ...

    evictions: NodeEvictions
    monitors: MonitorSupervisor

    def step(
        self, trigger_kind: StepTrigger | str = ..., detected_at: float | None = None
    ) -> Decision | None: ...

    def planned_monitors(self) -> MonitorPlan: ...


class NodeLoop:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def wait_for(self) -> tuple[float | None, bool]:
        """Triggers held while an episode lasts (:meth:`EvictionPlanner.hold_triggers`).

        A tick at the latest (the agent's own threshold check) only while a threshold
        monitor runs, or while an episode lasts (the re-check that sees pods go and runs the
        kill fallback); otherwise no timer at all: the kernel's notification wakes the loop.
        """
        last = self.agent.last
        alive = last.alive if last is not None else set()
        hold = self.agent.evictions.planner.hold_triggers(alive)
        config = self.agent.monitors.config
        polled = config is None or monitors_polled(config)
        tick = self.agent.options.tick_seconds if polled or hold else None
        return tick, hold

    def monitors_failed(self, failures: Sequence[MonitorFailure]) -> None:
        self.agent.monitors.failed(failures)

    def answer(self, wakeup: Wakeup) -> tuple[StepTrigger, float | None]:
        """Always a step: for the triggers that came (RECHECK: timer, wake-up, failures
        only), detected when the earliest of them was."""
        earliest = wakeup.earliest
        return wakeup.step_trigger, earliest.detected_at if earliest else None

    def run_step(self, trigger: StepTrigger, detected_at: float | None) -> None:
        self.agent.step(trigger, detected_at)

    def sync_monitors(self) -> None:
        """Start the monitors the settings ask for; restart them when that changed."""
        self.agent.monitors.sync(self.agent.planned_monitors)

    def stop_monitors(self) -> None:
        self.agent.monitors.stop()
