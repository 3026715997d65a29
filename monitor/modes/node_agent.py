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

Each job has its own unit; this class builds them and puts them in order: ``ReserveKeeper``
(which settings are enforced, and why a reserve was refused), ``NodeStep`` (steps 1-4 in
order, and the lock discipline), ``KubepodsLimit`` (step 1), ``NodeMeasurer`` (2) and
``NodeLook`` (the last measurement, for status and ``/healthz``), ``PodViewKeeper`` (blind
spots in the pod view: relists, kill-only candidates), ``NodeEvictions`` with the pure
``EvictionPlanner`` and what it remembers between steps (3, 4; the ``PodEvictor`` acts),
``NodeStatusView`` with ``node_status`` (``/status``, counters, the CRD's ``lastDecision``),
``MonitorSupervisor``, and ``NodeLoop``, its side of the loop it shares with the guard
(``step_loop.py``). Its lock guards what status and reloads share with the loop; it is never
held across an API call or a backoff sleep.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from oomguard.monitor.actions.pod_evictor import PodEvictor
from oomguard.monitor.decision.memory_pressure import PressureState
from oomguard.monitor.decision.newest_first import Decision
from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.feedback.metrics_registry import GuardMetrics
from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError
from oomguard.monitor.kernel.parse_error import ParseError
from oomguard.monitor.kube.node_reserve import ReserveReport, ReserveState
from oomguard.monitor.kube.pod_candidates import ProtectionRules
from oomguard.monitor.modes.high_record_file import record_in
from oomguard.monitor.modes.kubepods_limit import KubepodsLimit
from oomguard.monitor.modes.monitor_supervisor import (
    MonitorBuilder,
    MonitorPlan,
    MonitorSupervisor,
)
from oomguard.monitor.modes.node_evictions import NodeEvictions
from oomguard.monitor.modes.node_look import NodeLook
from oomguard.monitor.modes.node_loop import NodeLoop
from oomguard.monitor.modes.node_measurer import Measurement, NodeMeasurer, PodSnapshots
from oomguard.monitor.modes.node_monitors import node_monitor_plan
from oomguard.monitor.modes.node_options import (
    AgentOptions,
    protection_rules,
)
from oomguard.monitor.modes.node_options import effective_settings as effective_settings
from oomguard.monitor.modes.node_status import status_trigger as status_trigger
from oomguard.monitor.modes.node_status_view import NodeStatusView
from oomguard.monitor.modes.node_step import NodeStep
from oomguard.monitor.modes.pod_view_keeper import PodViewKeeper
from oomguard.monitor.modes.reserve_keeper import ReserveKeeper
from oomguard.monitor.modes.step_loop import run_loop
from oomguard.monitor.modes.systemd_memory_high import systemd_memory_high
from oomguard.monitor.runtime.change_notice import ChangeNotice
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
        self.reserve = ReserveKeeper(settings)
        self.pods = pods
        self.evictor = evictor
        self.kubepods = Cgroup(options.cgroup_root / options.kubepods.path)
        self._clock = clock
        self._lock = threading.Lock()  # never held across an API call or a sleep
        self._inbox = TriggerInbox(min_spacing=options.min_step_interval)
        # raised after every step, settings change and planned eviction: the status reporter
        # sleeps on it
        self.changes = ChangeNotice()
        self._steps = NodeStep(self, self._lock, clock, self._error, self.changes.notify)
        self.limit = KubepodsLimit(
            self.kubepods,
            options.margin_bytes,
            options.set_memory_high,
            record_in(options.state_dir),
            systemd_memory_high(options.systemd_dbus, options.kubepods, options.systemd_socket),
        )
        self.options = options
        self.evictions = NodeEvictions(evictor, metrics, clock)
        self.counters = self.evictions.counters  # the same dict: /status shows it
        self.monitors = MonitorSupervisor(
            self._inbox, self.kubepods, self._error, monitors, monitor_builder, metrics
        )
        self.look = NodeLook()
        self.pod_view = PodViewKeeper(pods, clock())  # blind spots: relists, kill-only candidates
        self.errors: list[str] = []
        self._view = NodeStatusView(self, self._lock)

    @property
    def options(self) -> AgentOptions:
        return self._options

    @options.setter
    def options(self, options: AgentOptions) -> None:
        self._options = options
        self.limit.margin_bytes = options.margin_bytes
        self.limit.enabled = options.set_memory_high
        self.measurer = NodeMeasurer(options.cgroup_root, options.kubepods, self.pods)

    # kept by the units, under the names callers know
    @property
    def settings(self) -> NodeSettings:
        return self.reserve.settings

    @property
    def reserve_state(self) -> ReserveState | None:
        return self.reserve.state

    @property
    def last(self) -> Measurement | None:
        return self.look.last

    @property
    def last_decision(self) -> dict[str, Any] | None:
        return self.evictions.last_decision

    # -- settings and the kubepods limit ---------------------------------------------------

    def update_settings(self, settings: NodeSettings) -> None:
        """Live reload (a new NodeMemoryReserve): memory.high moves now, the monitors at the
        loop's next turn, everything else at the next step."""
        with self._lock:
            self.reserve.settings = settings
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
        self.changes.notify()

    def apply_reserve(self, state: ReserveState) -> None:
        """A new NodeMemoryReserve version (or its deletion): enforce what it says, unless
        it is unsafe here (:class:`ReserveKeeper`)."""
        with self._lock:
            settings = self.reserve.offer(state, self.options.force_dry_run, self.limit.unsafe)
            refused = self.reserve.refused
        if state.error is not None:
            self._error(f"NodeMemoryReserve unusable, previous settings kept: {state.error}")
        if refused is not None:
            self._error(f"settings refused, last good settings kept: {refused}")
        elif settings is not None:
            self.update_settings(settings)
        self.changes.notify()  # a new generation, or a refusal, is news for the status

    def limit_bytes(self) -> int:
        """The guarded line: the memory.high we set, or what we would set without setting it."""
        return self.limit.limit_bytes(self.settings)

    def target_bytes(self) -> int:
        return self.limit.target_bytes(self.settings)

    def assert_memory_high(self) -> None:
        """Set kubepods memory.high, or put it back if something else changed it."""
        if self.limit.assert_high(self.settings):
            self.counters["memory_high_reasserted"] += 1

    def restore_memory_high(self) -> None:
        """On the way out: restore for good, so no reload or step still running sets it again."""
        with self._lock:
            self.limit.release()

    # -- one step --------------------------------------------------------------------------

    def rules(self) -> ProtectionRules:
        return protection_rules(self.options, self.settings)

    def step(
        self, trigger_kind: StepTrigger | str = TICK, detected_at: float | None = None
    ) -> Decision | None:
        """One look and, if needed, one decision and its actions (:class:`NodeStep`); None
        when measuring failed or the last resort acted. ``detected_at``: when the monitor
        that woke us noticed (None for the timer), for the detection-latency histogram;
        ``trigger_kind`` may be spelled as text (:meth:`StepTrigger.parse`). Called from one
        thread at a time (the loop, or a test)."""
        self.look.began(self._clock())
        try:
            return self._steps.run(StepTrigger.parse(trigger_kind), detected_at)
        finally:
            self.look.ended()
            self.changes.notify()

    @property
    def pressure(self) -> PressureState:
        """NodeMemoryReserve's MemoryPressure condition, as the last step left it."""
        return self._steps.pressure

    # -- status and the loop ---------------------------------------------------------------

    def healthy(self) -> tuple[bool, str]:
        return self.look.healthy(self._clock(), self.options.tick_seconds)

    def status(self) -> dict[str, Any]:
        return self._view.status()

    def report(self) -> ReserveReport | None:
        return self._view.report()

    def pod_view_counts(self) -> tuple[bool, int]:
        """For the metrics: whether the pod view is blind, and kill-only kills."""
        with self._lock:
            return self.pod_view.is_blind, self.evictor.killed_without_event

    def run(self, stop: StopSignal) -> None:
        run_loop(NodeLoop(self), self._inbox, stop)

    def planned_monitors(self) -> MonitorPlan:
        with self._lock:
            plan = node_monitor_plan(
                self.settings.monitor,
                self.target_bytes(),
                self.limit.writes(self.settings),
                self.kubepods.file("memory.pressure").exists(),
                self.settings.node_memory_bytes,
            )
        return plan.config, plan.notes

    def _error(self, message: str) -> None:
        self.errors.append(message)
        log_event(log, logging.ERROR, message)
        self.changes.notify()
