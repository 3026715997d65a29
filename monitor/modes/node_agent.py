"""Node mode: guard the kubepods cgroup and free memory by evicting pods newest first.

One loop, woken by monitor triggers (memory.events ``high``, threshold, PSI) and by a timer:

1. re-assert kubepods ``memory.high`` (node memory - reserve, capped below memory.max - margin)
   if something else changed it;
2. measure: kubepods working set, this node's pods (from the watch), their cgroups and memory;
3. last resort first: if pods chosen earlier have waited ``killFallback.waitSeconds``, usage is
   still above target and nothing evictable is left (all blocked by PDBs, protected, or the API
   server is unreachable), ``cgroup.kill`` the newest of them;
4. one newest-first decision (pure policy, in-flight rule), then evictions in that order,
   passing over PDB-blocked pods to the next candidate.

Target: usage must fall under ``memory.high x threshold.usagePercent`` minus the buffer, the
same line the threshold monitor watches, so one trigger leads to one decision that ends it.
The timer makes the loop its own 1 s threshold check when no trigger arrives. While an
episode lasts, steps are spaced at least ``min_step_interval`` apart (triggers arriving
sooner are held and coalesced); once a step found nothing to free and the pods it chose are
gone from the node, or after a quiet spell, a trigger is handled at once.

Monitors come from the settings (``node_monitors.node_monitor_plan``) and run under a
``MonitorSupervisor``; when a NodeMemoryReserve changes them (or the target the threshold
monitor watches), the loop stops the old set and starts the new one, without a restart.

Each job has its own unit; this class only puts them in order: ``KubepodsLimit`` (step 1),
``NodeMeasurer`` (2), ``NodeEvictions`` with the pure ``EvictionPlanner`` and what it
remembers between steps (3, 4; the ``PodEvictor`` acts), ``node_status`` (``/status``,
counters, the CRD's ``lastDecision``), ``MonitorSupervisor``, and ``NodeLoop``, its side of
the loop it shares with the guard (``step_loop.py``). Its lock guards what status and
reloads share with the loop; it is never held across an API call or a backoff sleep.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from oomguard.monitor.actions.pod_evictor import PodEvictor
from oomguard.monitor.decision.newest_first import Decision
from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.feedback.metrics_registry import GuardMetrics
from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError
from oomguard.monitor.kernel.parse_error import ParseError
from oomguard.monitor.kube.node_reserve import ReserveReport, ReserveState
from oomguard.monitor.kube.pod_candidates import ProtectionRules
from oomguard.monitor.modes.kubepods_limit import KubepodsLimit
from oomguard.monitor.modes.monitor_supervisor import (
    MonitorBuilder,
    MonitorPlan,
    MonitorSupervisor,
)
from oomguard.monitor.modes.node_evictions import NodeEvictions
from oomguard.monitor.modes.node_loop import NodeLoop
from oomguard.monitor.modes.node_measurer import Measurement, NodeMeasurer, PodSnapshots
from oomguard.monitor.modes.node_monitors import node_monitor_plan
from oomguard.monitor.modes.node_options import (
    AgentOptions,
    effective_settings,
    protection_rules,
)
from oomguard.monitor.modes.node_status import degraded, reserve_report, status_json
from oomguard.monitor.modes.node_status import status_trigger as status_trigger
from oomguard.monitor.modes.step_loop import run_loop
from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.monitor.triggers.factory import build_monitors
from oomguard.monitor.triggers.trigger import Monitor, StepTrigger
from oomguard.monitor.triggers.trigger_inbox import TriggerInbox
from oomguard.wire.node_settings import NodeSettings
from oomguard.wire.sizes import format_size

__all__ = [
    "AgentOptions",
    "Measurement",
    "MonitorBuilder",
    "NodeAgent",
    "PodSnapshots",
    "effective_settings",
    "status_trigger",
]

log = logging.getLogger("oomguard.node")

TICK = StepTrigger.RECHECK  # the loop's own threshold check when no trigger arrives


class NodeAgent:
    def __init__(
        self,
        options: AgentOptions,
        settings: NodeSettings,
        pods: PodSnapshots,
        evictor: PodEvictor,
        monitors: Sequence[Monitor] | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: GuardMetrics | None = None,
        monitor_builder: MonitorBuilder = build_monitors,
    ) -> None:
        """``monitors=None``: built from the settings and rebuilt when they change; a list:
        exactly those, for the agent's whole run."""
        self.metrics = metrics
        self.settings = settings
        self.fallback_settings = settings
        self.pods = pods
        self.evictor = evictor
        self.kubepods = Cgroup(options.cgroup_root / options.kubepods.path)
        self._clock = clock
        self._lock = threading.Lock()  # never held across an API call or a sleep
        self._inbox = TriggerInbox(min_spacing=options.min_step_interval)
        self._limit = KubepodsLimit(self.kubepods, options.margin_bytes, options.set_memory_high)
        self.options = options
        self.evictions = NodeEvictions(evictor, metrics, clock)
        self.counters = self.evictions.counters  # the same dict: /status shows it
        self.monitors = MonitorSupervisor(
            self._inbox, self.kubepods, self._error, monitors, monitor_builder, metrics
        )
        self.reserve_state: ReserveState | None = None
        self.measure_error: str | None = None
        self.settings_refused: str | None = None  # why the last reserve was not enforced
        self.last: Measurement | None = None
        self.errors: list[str] = []
        self.last_step_at: float | None = None

    @property
    def options(self) -> AgentOptions:
        return self._options

    @options.setter
    def options(self, options: AgentOptions) -> None:
        self._options = options
        self._limit.margin_bytes = options.margin_bytes
        self._limit.enabled = options.set_memory_high
        self._measurer = NodeMeasurer(options.cgroup_root, options.kubepods, self.pods)

    # kept by the units, under the names callers know
    @property
    def last_decision(self) -> dict[str, Any] | None:
        return self.evictions.last_decision

    @property
    def monitor_failures(self) -> list[str]:
        return self.monitors.failures

    # -- settings and the kubepods limit ---------------------------------------------------

    def update_settings(self, settings: NodeSettings) -> None:
        """Live reload (a new NodeMemoryReserve): memory.high moves now, the monitors at the
        loop's next turn, everything else at the next step."""
        with self._lock:
            self.settings = settings
            self.evictions.use_settings(settings)
            log_event(
                log,
                logging.INFO,
                "settings updated",
                source=settings.source_policy or "built-in defaults",
                reserve=format_size(settings.reserve_bytes),
                dry_run=settings.dry_run,
            )
            try:
                self.assert_memory_high()
            except (CgroupError, ParseError, OSError) as exc:
                self._error(f"cannot set memory.high on {self.kubepods.path}: {exc}")
        self._inbox.wake()  # the loop re-plans its monitors at once

    def apply_reserve(self, state: ReserveState) -> None:
        """A new NodeMemoryReserve version (or its deletion): enforce what it says."""
        with self._lock:
            self.reserve_state = state
        if state.error is not None:
            self._error(f"NodeMemoryReserve unusable, previous settings kept: {state.error}")
        settings = effective_settings(state, self.fallback_settings, self.options.force_dry_run)
        if settings == self.settings:
            with self._lock:
                self.settings_refused = None  # back to what is enforced
            return
        try:
            refused = self._limit.unsafe(settings)
        except (CgroupError, ParseError, OSError) as exc:
            refused = f"cannot read {self.kubepods.path} memory.max: {exc}"
        with self._lock:
            self.settings_refused = refused
            if refused is not None:  # status and the CRD: not applied, last good kept
                kept = dataclasses.replace(state, settings=self.settings, error=refused)
                self.reserve_state = kept
        if refused is not None:
            self._error(f"settings refused, last good settings kept: {refused}")
            return
        self.update_settings(settings)

    def limit_bytes(self) -> int:
        """The guarded line: the memory.high we set, or what we would set without setting it."""
        return self._limit.limit_bytes(self.settings)

    def target_bytes(self) -> int:
        percent = self.settings.monitor.threshold.usage_percent
        return int(self.limit_bytes() * percent / 100)

    def assert_memory_high(self) -> None:
        """Set kubepods memory.high, or put it back if something else changed it."""
        if self._limit.assert_high(self.settings):
            self.counters["memory_high_reasserted"] += 1

    def restore_memory_high(self) -> None:
        self._limit.restore()

    # -- one step --------------------------------------------------------------------------

    def rules(self) -> ProtectionRules:
        return protection_rules(self.options, self.settings)

    def measure(self, now: float) -> Measurement:
        """One look at the node; pods blocked by a PDB a moment ago count as protected."""
        m = self._measurer.measure(self.rules(), self.settings.eviction.policy)
        return dataclasses.replace(
            m, candidates=self.evictions.planner.with_blocked(m.candidates, now)
        )

    def step(
        self, trigger_kind: StepTrigger | str = TICK, detected_at: float | None = None
    ) -> Decision | None:
        """One look and, if needed, one decision and its actions; None when measuring failed
        or the last resort acted. ``detected_at``: when the monitor that woke us noticed
        (None for the timer), for the detection-latency histogram; ``trigger_kind`` may be
        spelled as text (:meth:`StepTrigger.parse`). Called from one thread at a time (the
        loop, or a test): the plan is made under the lock, evictions and their backoff run
        without it, and their results are recorded under it again."""
        trigger = StepTrigger.parse(trigger_kind)
        with self._lock:
            now = self._clock()
            m = self._look(now)
            if m is None:
                return None
            plan = self.evictions.plan(
                trigger,
                detected_at,
                now,
                m,
                self.settings,
                self.limit_bytes(),
                self.target_bytes(),
                self.pods.connected,
                self.options.cgroup_root,
            )
        done = self.evictions.act(plan)
        if done is not None:
            with self._lock:
                self.evictions.record(plan, *done)
        return plan.decision

    def _look(self, now: float) -> Measurement | None:
        """memory.high re-asserted and the node measured; None (and why, for status and the
        CRD) when kubepods cannot be read."""
        self.last_step_at = now
        try:
            self.assert_memory_high()
            m = self.measure(now)
        except (CgroupError, ParseError, OSError, ValueError) as exc:
            self.measure_error = f"cannot measure {self.kubepods.path}: {exc}"
            self._error(self.measure_error)
            return None
        self.measure_error = None
        self.last = m
        self.evictions.planner.forget_gone(m.alive)
        return m

    # -- status ----------------------------------------------------------------------------

    def healthy(self) -> tuple[bool, str]:
        """Live while the loop keeps stepping (at least every few ticks)."""
        if self.last_step_at is None:
            return True, "starting"
        late = self._clock() - self.last_step_at
        limit = max(10.0, 5 * self.options.tick_seconds)
        return late < limit, f"no loop step for {late:.1f}s"

    def status(self) -> dict[str, Any]:
        """The ``/status`` JSON."""
        with self._lock:
            high = self._limit.high
            return status_json(
                self.settings,
                self.reserve_state,
                str(self.kubepods.path),
                self.options.kubepods.driver.value,
                high.bytes if high is not None else None,
                self._limit.writes(self.settings),
                self.target_bytes() if high is not None else None,
                self.last,
                self.rules(),
                self.monitors.status(),
                self.pods.connected,
                self.counters,
                self.errors,
                self.last_decision,
            )

    def report(self) -> ReserveReport | None:
        """What ``NodeMemoryReserve.status`` should say now; None before the first reserve
        state (nothing to report into yet)."""
        with self._lock:
            state, high, m, options = self.reserve_state, self._limit.high, self.last, self.options
            writes = self._limit.writes(self.settings)
            problem = degraded(
                options.set_memory_high,
                self.measure_error,
                self.monitor_failures,
                self.settings_refused,
            )
            last = self.last_decision
        if state is None:
            return None
        events, maximum = self._limit.kernel_counters()
        applied = high.bytes if high is not None and writes else None
        usage = m.usage if m is not None else 0
        cgroup = str(options.kubepods.path)
        return reserve_report(state, cgroup, applied, maximum, usage, events, problem, last)

    # -- the loop --------------------------------------------------------------------------

    def run(self, stop: StopSignal) -> None:
        run_loop(NodeLoop(self), self._inbox, stop)

    def planned_monitors(self) -> MonitorPlan:
        with self._lock:
            target = self.target_bytes()
            pressure_available = self.kubepods.file("memory.pressure").exists()
            plan = node_monitor_plan(
                self.settings.monitor,
                target,
                self._limit.writes(self.settings),
                pressure_available,
                self.settings.node_memory_bytes,
            )
        return plan.config, plan.notes

    def _error(self, message: str) -> None:
        self.errors.append(message)
        log_event(log, logging.ERROR, message)
