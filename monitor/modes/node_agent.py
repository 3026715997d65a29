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
``MonitorRunner``; when a NodeMemoryReserve changes them (or the target the threshold monitor
watches), the loop stops the old set and starts the new one, without a restart.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from oomguard.monitor.actions.outcome import Outcome
from oomguard.monitor.actions.pod_evictor import ActionResult, PodEvictor, PodVictim, Situation
from oomguard.monitor.decision.candidate import Candidate, newest_first_key
from oomguard.monitor.decision.kill_fallback import kill_fallback
from oomguard.monitor.decision.kubepods_high import KubepodsHigh, kubepods_high
from oomguard.monitor.decision.newest_first import Decision, InFlight, Limits, decide
from oomguard.monitor.decision.newest_first import Outcome as DecisionOutcome
from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.feedback.metrics_registry import GuardMetrics
from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError, walk_cgroups
from oomguard.monitor.kernel.memory_limit import MemoryLimit
from oomguard.monitor.kernel.parse_error import ParseError
from oomguard.monitor.kube.node_reserve import ReserveReport, ReserveState
from oomguard.monitor.kube.pod_candidates import (
    PodInfo,
    ProtectionRules,
    pod_candidates,
    protection_reason,
)
from oomguard.monitor.kube.pod_cgroups import KubepodsLocation, PodCgroup, parse_pod_cgroups
from oomguard.monitor.modes.node_monitors import node_monitor_plan
from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.monitor.triggers.factory import MonitorConfig, MonitorRunner, build_monitors
from oomguard.monitor.triggers.trigger import Monitor, MonitorError, StepTrigger, Trigger
from oomguard.monitor.triggers.trigger_inbox import TriggerInbox
from oomguard.wire.node_settings import EvictionPolicy, NodeSettings
from oomguard.wire.sizes import format_size
from oomguard.wire.times import rfc3339

log = logging.getLogger("oomguard.node")

TICK = StepTrigger.RECHECK  # the loop's own threshold check when no trigger arrives


class PodSnapshots(Protocol):
    """What the agent needs from the pod watch."""

    connected: bool

    def snapshot(self) -> dict[str, PodInfo]: ...


@dataclass(frozen=True)
class AgentOptions:
    """Local facts and flags of this node (not part of the NodeMemoryReserve settings)."""

    cgroup_root: Path  # the cgroup2 mount
    kubepods: KubepodsLocation
    self_uid: str | None = None
    self_key: str | None = None
    margin_bytes: int = 64 * 2**20
    set_memory_high: bool = True  # False on kernels < 5.9 (memory.high livelock risk)
    tick_seconds: float = 1.0
    min_step_interval: float = 0.1  # during an episode, at most one measurement per this
    force_dry_run: bool = False  # --dry-run on the command line wins over any reserve


MonitorBuilder = Callable[[Cgroup, MonitorConfig], list[Monitor]]


def status_trigger(trigger: StepTrigger | str) -> str:
    """``lastDecision.trigger`` in the CRD (event, pressure or threshold): the re-check is
    the agent's own threshold check. Text is parsed as :meth:`StepTrigger.parse` does."""
    match StepTrigger.parse(trigger):
        case StepTrigger.EVENT:
            return "event"
        case StepTrigger.PRESSURE:
            return "pressure"
        case StepTrigger.THRESHOLD | StepTrigger.RECHECK:
            return "threshold"


# lastDecision.action in the CRD, strongest first: a round that killed says Killed
STATUS_ACTIONS = ("Killed", "Evicted", "DryRun")


def status_action(outcome: Outcome) -> str:
    """What one victim's outcome says in ``lastDecision.action`` ("None": nothing done)."""
    match outcome:
        case Outcome.KILLED | Outcome.EXITED:
            return "Killed"
        case Outcome.EVICTED | Outcome.GONE:
            return "Evicted"
        case Outcome.DRY_RUN:
            return "DryRun"
        case (
            Outcome.BLOCKED
            | Outcome.FAILED
            | Outcome.UNREACHABLE
            | Outcome.RATE_LIMITED
            | Outcome.STUCK
        ):
            return "None"


def counter_key(outcome: Outcome) -> str | None:
    """The ``counters`` entry (in ``/status``) one victim's outcome adds to, if any."""
    match outcome:
        case Outcome.EVICTED:
            return "evicted"
        case Outcome.BLOCKED:
            return "blocked"
        case Outcome.KILLED | Outcome.EXITED:
            return "killed"
        case Outcome.DRY_RUN:
            return "dry_run"
        case Outcome.RATE_LIMITED:
            return "rate_limited"
        case Outcome.GONE | Outcome.FAILED | Outcome.UNREACHABLE | Outcome.STUCK:
            return None


def effective_settings(
    state: ReserveState, fallback: NodeSettings, force_dry_run: bool
) -> NodeSettings:
    """The settings to enforce for a reserve state: the object's when it exists, else the
    command line's fallback (``--reserve``); ``--dry-run`` always wins."""
    settings = fallback if state.from_defaults else state.settings
    if force_dry_run and not settings.dry_run:
        settings = dataclasses.replace(settings, dry_run=True)
    return settings


@dataclass(frozen=True)
class Measurement:
    usage: int
    pods: dict[str, PodInfo]
    cgroups: dict[str, PodCgroup]
    candidates: list[Candidate]


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
        self.options = options
        self.metrics = metrics
        self.settings = settings
        self.fallback_settings = settings
        self.pods = pods
        self.evictor = evictor
        self.fixed_monitors = monitors
        self.kubepods = Cgroup(options.cgroup_root / options.kubepods.path)
        self._clock = clock
        self._build_monitors = monitor_builder
        self._inbox = TriggerInbox(min_spacing=options.min_step_interval)
        self._runner: MonitorRunner | None = None
        self.monitor_config: MonitorConfig | None = None
        self.monitor_notes: tuple[str, ...] = ()
        self.monitor_failures: list[str] = []
        self.reserve_state: ReserveState | None = None
        self.last_decision: dict[str, Any] | None = None
        self.measure_error: str | None = None
        self._lock = threading.Lock()
        self._previous_high: MemoryLimit | None = None
        self._set_by_us = False
        self._high: KubepodsHigh | None = None
        self._in_flight: InFlight | None = None
        self._last_outcome: DecisionOutcome | None = None
        self._chosen_at: dict[str, float] = {}
        self._blocked_until: dict[str, float] = {}
        self.last: Measurement | None = None
        self.counters: dict[str, int] = {
            "decisions": 0,
            "evicted": 0,
            "blocked": 0,
            "killed": 0,
            "dry_run": 0,
            "rate_limited": 0,
            "memory_high_reasserted": 0,
        }
        self.errors: list[str] = []
        self.last_step_at: float | None = None

    # -- settings and the kubepods limit ---------------------------------------------------

    def update_settings(self, settings: NodeSettings) -> None:
        """Live reload (a new NodeMemoryReserve): memory.high moves now, the monitors at the
        loop's next turn, everything else at the next step."""
        with self._lock:
            self.settings = settings
            self.evictor.grace_period_seconds = settings.eviction.grace_period_seconds
            self.evictor.dry_run = settings.dry_run
            self.evictor.rate.per_minute = settings.eviction.max_evictions_per_minute
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
        if settings != self.settings:
            self.update_settings(settings)

    def limit_bytes(self) -> int:
        """The guarded line: the memory.high we set, or what we would set without setting it."""
        if self._high is None:
            self._high = self._compute_high()
        return self._high.bytes

    def target_bytes(self) -> int:
        percent = self.settings.monitor.threshold.usage_percent
        return int(self.limit_bytes() * percent / 100)

    def _compute_high(self) -> KubepodsHigh:
        maximum = self.kubepods.memory_max().bytes
        return kubepods_high(
            self.settings.node_memory_bytes,
            self.settings.reserve_bytes,
            maximum,
            self.options.margin_bytes,
        )

    def assert_memory_high(self) -> None:
        """Set kubepods memory.high, or put it back if something else changed it."""
        high = self._compute_high()
        changed = self._high is not None and high != self._high
        self._high = high
        if not self.options.set_memory_high:
            return
        current = self.kubepods.memory_high()
        if self._previous_high is None:
            self._previous_high = current
        if current.bytes == high.bytes:
            return
        if self._set_by_us and not changed:
            self.counters["memory_high_reasserted"] += 1
            log_event(
                log,
                logging.WARNING,
                "kubepods memory.high was changed by someone else; setting it again",
                found=str(current),
                wanted=high.bytes,
            )
        self.kubepods.set_memory_high(MemoryLimit(high.bytes))
        self._set_by_us = True
        log_event(
            log,
            logging.INFO,
            "kubepods memory.high set",
            cgroup=str(self.kubepods.path),
            memory_high=format_size(high.bytes),
            why=high.explain(),
        )

    def restore_memory_high(self) -> None:
        if self._previous_high is not None and self.kubepods.exists():
            self.kubepods.set_memory_high(self._previous_high)
            log_event(
                log, logging.INFO, "kubepods memory.high restored", value=str(self._previous_high)
            )

    # -- measuring -------------------------------------------------------------------------

    def rules(self) -> ProtectionRules:
        eviction = self.settings.eviction
        return ProtectionRules(
            self_uid=self.options.self_uid,
            self_key=self.options.self_key,
            protect_daemonset_pods=eviction.protect_daemonset_pods,
            protected_namespaces=frozenset(eviction.protected_namespaces),
        )

    def measure(self, now: float) -> Measurement:
        usage = self.kubepods.working_set()
        pods = self.pods.snapshot()
        dirs = walk_cgroups(self.options.cgroup_root, self.options.kubepods.path, depth=3)
        cgroups = parse_pod_cgroups(dirs, self.options.kubepods)
        memory: dict[str, int] = {}
        for uid, cgroup in cgroups.items():
            try:
                memory[uid] = Cgroup(self.options.cgroup_root / cgroup.path).working_set()
            except (CgroupError, ParseError):
                memory[uid] = 0  # gone between the walk and the read
        qos_first = self.settings.eviction.policy is EvictionPolicy.QOS_THEN_NEWEST
        candidates = [
            dataclasses.replace(c, protected=True)
            if self._blocked_until.get(c.id, -1.0) > now and not c.protected
            else c
            for c in pod_candidates(pods.values(), memory, self.rules(), qos_first)
        ]
        return Measurement(usage, pods, cgroups, candidates)

    def eviction_order(self, measurement: Measurement) -> list[Candidate]:
        """Who would go first right now: eligible candidates in policy order."""
        return sorted(
            (
                c
                for c in measurement.candidates
                if not (c.protected or c.dying) and c.memory_bytes > 0
            ),
            key=newest_first_key,
        )

    # -- one round -------------------------------------------------------------------------

    def step(
        self, trigger_kind: StepTrigger | str = TICK, detected_at: float | None = None
    ) -> Decision | None:
        """One look and, if needed, one decision; ``detected_at`` is when the monitor that
        woke us noticed (None for the timer), for the detection-latency histogram.
        ``trigger_kind`` may be spelled as text (see :meth:`StepTrigger.parse`)."""
        with self._lock:
            return self._step(StepTrigger.parse(trigger_kind), detected_at)

    def _step(self, trigger_kind: StepTrigger, detected_at: float | None = None) -> Decision | None:
        now = self._clock()
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
        self._forget_gone(m)
        target = self.target_bytes()
        eviction = self.settings.eviction
        situation = Situation(
            self.settings.node_name,
            m.usage,
            self.limit_bytes(),
            trigger_kind.value,
            "newest unprotected pod first"
            if eviction.policy is EvictionPolicy.NEWEST_FIRST
            else "newest pod of the least protected QoS class",
        )
        order = self.eviction_order(m)
        evictable_left = self.pods.connected and any(c.id not in self._chosen_at for c in order)
        fallback = kill_fallback(
            now,
            m.usage,
            target,
            eviction.buffer_bytes,
            eviction.kill_fallback_wait_seconds,
            self._chosen_at,
            m.candidates,
            evictable_left,
            eviction.kill_fallback,
        )
        if fallback.victims:
            log_event(log, logging.ERROR, "last resort: cgroup.kill", reason=fallback.reason)
            if self.metrics is not None:
                self.metrics.record_decision(
                    trigger_kind, len(fallback.victims), detected_at, self._clock()
                )
            results = []
            for candidate in fallback.victims:
                result = self.evictor.kill(self._victim(candidate, m), situation)
                results.append(result)
                self._count(result, now)
                self._chosen_at.pop(candidate.id, None)
            self._in_flight = InFlight(frozenset(c.id for c in fallback.victims), now)
            self._remember_decision(trigger_kind, m.usage, target, results, fallback.reason)
            return None

        limits = Limits(
            target,
            eviction.buffer_bytes,
            float(eviction.grace_period_seconds + eviction.kill_fallback_wait_seconds),
        )
        decision = decide(
            [
                c
                for c in m.candidates
                if c.id not in self._chosen_at or c.id in self._in_flight_ids()
            ],
            m.usage,
            limits,
            now,
            self._in_flight,
        )
        if decision.outcome is DecisionOutcome.VICTIMS:
            self.counters["decisions"] += 1
            if self.metrics is not None:
                self.metrics.record_decision(
                    trigger_kind, len(decision.victims), detected_at, self._clock()
                )
            victim_ids = {v.id for v in decision.victims}
            rest = [c for c in order if c.id not in victim_ids and c.id not in self._chosen_at]
            ordered = [self._victim(c, m) for c in (*decision.victims, *rest)]
            log_event(
                log,
                logging.WARNING,
                "evicting newest pods",
                trigger=trigger_kind.value,
                usage=format_size(m.usage),
                target=format_size(target),
                amount_to_free=format_size(decision.amount_to_free),
                victims=[v.name for v in decision.victims],
                reason=decision.reason,
            )
            limited_before = self.evictor.counts[Outcome.RATE_LIMITED]
            results = self.evictor.evict_until_covered(ordered, decision.amount_to_free, situation)
            # a rate-limited pod ends the round without a result of its own
            self.counters["rate_limited"] += (
                self.evictor.counts[Outcome.RATE_LIMITED] - limited_before
            )
            self._after_evictions(results, now)
            self._remember_decision(trigger_kind, m.usage, target, results, decision.reason)
        elif decision.outcome is DecisionOutcome.NO_CANDIDATES and self._last_outcome is not (
            DecisionOutcome.NO_CANDIDATES
        ):  # said once per episode, not on every tick while it lasts
            log_event(
                log,
                logging.ERROR,
                "memory must be freed but no pod may be evicted",
                usage=format_size(m.usage),
                reason=decision.reason,
            )
        self._last_outcome = decision.outcome
        return decision

    def _remember_decision(
        self,
        trigger_kind: StepTrigger,
        usage: int,
        target: int,
        results: Sequence[ActionResult],
        reason: str,
    ) -> None:
        """``lastDecision`` for the NodeMemoryReserve status, in the CRD's terms."""
        actions = {status_action(r.outcome) for r in results}
        action = next((a for a in STATUS_ACTIONS if a in actions), "None")
        acted = [r.victim.candidate.name for r in results if status_action(r.outcome) != "None"]
        self.last_decision = {
            "time": rfc3339(datetime.now(UTC)),
            "trigger": status_trigger(trigger_kind),
            "usageBytes": usage,
            "targetBytes": target,
            "victims": acted[:100],
            "action": action,
            "message": "; ".join(
                [reason] + [f"{r.victim.candidate.name}: {r.outcome.value}" for r in results]
            )[:1024],
        }

    def _hold_triggers(self) -> bool:
        """Space steps unless the last one found nothing to free and the pods it chose
        (evicted or killed) are gone from the last measurement."""
        if self._last_outcome is not DecisionOutcome.NOTHING_TO_FREE:
            return True
        m = self.last
        chosen = set(self._chosen_at) | self._in_flight_ids()
        return m is not None and any(uid in m.pods or uid in m.cgroups for uid in chosen)

    def _in_flight_ids(self) -> frozenset[str]:
        return self._in_flight.victim_ids if self._in_flight is not None else frozenset()

    def _after_evictions(self, results: Iterable[ActionResult], now: float) -> None:
        wait = self.settings.eviction.kill_fallback_wait_seconds
        acted: set[str] = set()
        for result in results:
            uid = result.victim.candidate.id
            self._count(result, now)
            if result.outcome in (Outcome.EVICTED, Outcome.UNREACHABLE):
                self._chosen_at[uid] = now
                acted.add(uid)
            elif result.outcome is Outcome.BLOCKED:
                self._chosen_at[uid] = now
                # blocked longer than the fallback wait, so the fallback can see "nothing left"
                self._blocked_until[uid] = now + 2 * wait + 5
        if acted:
            self._in_flight = InFlight(frozenset(acted), now)

    def _count(self, result: ActionResult, decided_at: float) -> None:
        if self.metrics is not None:
            memory = result.victim.candidate.memory_bytes
            self.metrics.record_action(result.outcome, memory, self._clock() - decided_at)
        key = counter_key(result.outcome)
        if key is not None:
            self.counters[key] += 1

    def _forget_gone(self, m: Measurement) -> None:
        alive = set(m.pods) | set(m.cgroups)
        for uid in [u for u in self._chosen_at if u not in alive]:
            del self._chosen_at[uid]
        for uid in [u for u in self._blocked_until if u not in alive]:
            del self._blocked_until[uid]

    def _victim(self, candidate: Candidate, m: Measurement) -> PodVictim:
        pod = m.pods.get(candidate.id)
        cgroup = m.cgroups.get(candidate.id)
        if pod is None:  # a cgroup without a pod object cannot be a candidate; keep types honest
            raise KeyError(candidate.id)
        path = self.options.cgroup_root / cgroup.path if cgroup is not None else None
        return PodVictim(candidate, pod, path)

    def healthy(self) -> tuple[bool, str]:
        """Live while the loop keeps stepping (at least every few ticks)."""
        if self.last_step_at is None:
            return True, "starting"
        late = self._clock() - self.last_step_at
        limit = max(10.0, 5 * self.options.tick_seconds)
        return late < limit, f"no loop step for {late:.1f}s"

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self._lock:
            m = self.last
            high = self._high
            order = self.eviction_order(m) if m is not None else []
            rules = self.rules()
            protected = []
            if m is not None:
                for c in sorted(m.candidates, key=newest_first_key):
                    pod = m.pods.get(c.id)
                    reason = protection_reason(pod, rules) if pod is not None else None
                    if c.protected:
                        protected.append({"pod": c.name, "why": reason or "blocked by a PDB"})
            return {
                "mode": "node",
                "node": self.settings.node_name,
                "cgroup": str(self.kubepods.path),
                "driver": self.options.kubepods.driver.value,
                "memory_high": high.bytes if high is not None else None,
                "memory_high_set": self.options.set_memory_high,
                "target": self.target_bytes() if high is not None else None,
                "usage": m.usage if m is not None else None,
                "dry_run": self.settings.dry_run,
                "settings": self._settings_status(),
                "monitors": self._monitors_status(),
                "api_connected": self.pods.connected,
                "counters": dict(self.counters),
                "eviction_order": [
                    {
                        "pod": c.name,
                        "uid": c.id,
                        "memory": c.memory_bytes,
                        "started_at": c.started_at,
                        "rank": c.preference_rank,
                    }
                    for c in order
                ],
                "protected": protected,
                "errors": self.errors[-10:],
            }

    def _settings_status(self) -> dict[str, Any]:
        state = self.reserve_state
        settings = self.settings
        if settings.is_default:
            source = (
                "built-in defaults (no NodeMemoryReserve for this node)"
                if state is not None
                else "built-in defaults (NodeMemoryReserve not watched)"
            )
        else:
            source = f"NodeMemoryReserve {settings.node_name} (policy {settings.source_policy})"
        return {
            "source": source,
            "from_defaults": settings.is_default,
            "policy": settings.source_policy,
            "generation": state.generation if state is not None else None,
            "error": state.error if state is not None else None,
            "reserve": settings.reserve_bytes,
            "node_memory": settings.node_memory_bytes,
        }

    def _monitors_status(self) -> dict[str, Any]:
        config = self.monitor_config
        if self.fixed_monitors is not None:
            running = [m.name for m in self.fixed_monitors]
        elif config is None:
            running = []
        else:
            running = [
                name
                for name, on in (
                    ("event", config.event),
                    ("threshold", config.threshold is not None),
                    ("pressure", config.pressure is not None),
                )
                if on
            ]
        return {
            "running": running,
            "notes": list(self.monitor_notes),
            "failures": self.monitor_failures[-5:],
        }

    def report(self) -> ReserveReport | None:
        """What ``NodeMemoryReserve.status`` should say now; None before the first reserve
        state (nothing to report into yet)."""
        with self._lock:
            state = self.reserve_state
            if state is None:
                return None
            high = self._high
            m = self.last
            try:
                events = dict(self.kubepods.memory_events().counters)
            except (CgroupError, ParseError, OSError):
                events = {}
            try:
                maximum = self.kubepods.memory_max().bytes
            except (CgroupError, ParseError, OSError):
                maximum = None
            degraded: tuple[str, str] | None = None
            if not self.options.set_memory_high:
                degraded = (
                    "MemoryHighUnsupported",
                    "kernel older than 5.9: memory.high is not set (allocator livelock "
                    "risk); threshold and pressure monitors only",
                )
            elif self.measure_error is not None:
                degraded = ("CgroupUnreadable", self.measure_error)
            elif self.monitor_failures:
                degraded = ("MonitorFailed", self.monitor_failures[-1])
            return ReserveReport(
                state=state,
                guarded_cgroup=str(self.options.kubepods.path),
                memory_high_bytes=(
                    high.bytes if high is not None and self.options.set_memory_high else None
                ),
                memory_max_bytes=maximum,
                usage_bytes=m.usage if m is not None else 0,
                memory_events=events,
                degraded_reason=degraded[0] if degraded else None,
                degraded_message=degraded[1] if degraded else "",
                last_decision=self.last_decision,
            )

    # -- the loop --------------------------------------------------------------------------

    def sink(self, trigger: Trigger) -> None:
        self._inbox.sink(trigger)

    def run(self, stop: StopSignal) -> None:
        self._inbox.wake_on(stop)
        try:
            self.sync_monitors()
            while not stop.is_set():
                kind, detected_at = self._next_trigger()
                if stop.is_set():
                    break
                self.step(kind, detected_at)
                self.sync_monitors()
        finally:
            stop.set()
            self._stop_monitors()

    def planned_monitors(self) -> tuple[MonitorConfig, tuple[str, ...]]:
        with self._lock:
            target = self.target_bytes()
            pressure_available = self.kubepods.file("memory.pressure").exists()
            plan = node_monitor_plan(
                self.settings.monitor, target, self.options.set_memory_high, pressure_available
            )
        return plan.config, plan.notes

    def sync_monitors(self) -> None:
        """Start the monitors the settings ask for; restart them when that changed."""
        if self.fixed_monitors is not None:
            if self._runner is None:
                self._start_runner(list(self.fixed_monitors))
            return
        try:
            config, notes = self.planned_monitors()
        except (CgroupError, ParseError, OSError, ValueError) as exc:
            self._error(f"cannot plan monitors for {self.kubepods.path}: {exc}")
            return
        if config == self.monitor_config and self._runner is not None:
            return
        self._stop_monitors()
        if notes != self.monitor_notes:
            for note in notes:
                log_event(log, logging.WARNING, note)
        self.monitor_config, self.monitor_notes = config, notes
        self.monitor_failures.clear()
        monitors = self._build_monitors(self.kubepods, config)
        log_event(
            log,
            logging.INFO,
            "monitors started",
            monitors=[m.name for m in monitors],
            threshold=format_size(config.threshold.limit_bytes) if config.threshold else None,
        )
        self._start_runner(monitors)

    def _start_runner(self, monitors: list[Monitor]) -> None:
        if self.metrics is not None:
            monitors = self.metrics.tracked(monitors)
        self._runner = self._inbox.runner(monitors)
        self._runner.start()

    def _stop_monitors(self) -> None:
        if self._runner is not None:
            still = self._runner.stop(2.0)
            if still:
                self._error(f"monitors did not stop within 2s: {', '.join(still)}")
            self._runner = None

    def _next_trigger(self) -> tuple[StepTrigger, float | None]:
        """The kinds of the triggers that woke us (or TICK: timer, wake-up, failures only),
        and when the earliest of them was detected."""
        wakeup = self._inbox.next(self.options.tick_seconds, hold=self._hold_triggers())
        for failure in wakeup.failures:
            verb = "stopped" if isinstance(failure.error, MonitorError) else "crashed"
            message = f"{failure.monitor} monitor {verb}: {failure.error!r}"
            self.monitor_failures.append(message)
            self._error(message)
        earliest = wakeup.earliest
        return wakeup.step_trigger, earliest.detected_at if earliest else None

    def _error(self, message: str) -> None:
        self.errors.append(message)
        log_event(log, logging.ERROR, message)
