"""One step's evictions on a node: planned from a measurement, carried out, recorded.

Planning and recording touch state the agent's status shares, so the agent calls them under
its lock; :meth:`NodeEvictions.act` makes the API calls (and their backoff sleeps) and is
called without it. What is remembered between steps lives in the pure ``EvictionPlanner``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from oomguard.monitor.actions.outcome import Outcome
from oomguard.monitor.actions.pod_evictor import ActionResult, PodEvictor, PodVictim, Situation
from oomguard.monitor.decision.candidate import Candidate
from oomguard.monitor.decision.episode import EpisodeClock
from oomguard.monitor.decision.eviction_planner import EvictionLimits, EvictionPlanner
from oomguard.monitor.decision.newest_first import Decision
from oomguard.monitor.decision.newest_first import Outcome as DecisionOutcome
from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.feedback.metrics_registry import GuardMetrics
from oomguard.monitor.kube import victim_order
from oomguard.monitor.modes.node_measurer import Measurement
from oomguard.monitor.modes.node_status import COUNTERS, counter_key, last_decision
from oomguard.monitor.triggers.trigger import StepTrigger
from oomguard.wire.node_settings import NodeSettings
from oomguard.wire.sizes import format_size

log = logging.getLogger("oomguard.node")

Done = list[tuple[ActionResult, float]]  # each victim's result, seconds after the decision


@dataclass(frozen=True)
class EvictionRound:
    """One step's plan: the last resort's kills, or a decision and its eviction walk."""

    trigger: StepTrigger
    now: float
    measurement: Measurement
    limits: EvictionLimits
    situation: Situation
    reason: str
    kills: tuple[PodVictim, ...] = ()  # the last resort: cgroup.kill these
    decision: Decision | None = None  # None when the last resort acts instead
    walk: tuple[PodVictim, ...] = ()  # evict in this order until the decision is covered


class NodeEvictions:
    def __init__(
        self,
        evictor: PodEvictor,
        metrics: GuardMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.evictor = evictor
        self.metrics = metrics
        self._clock = clock
        self.planner = EvictionPlanner()
        self.episodes = EpisodeClock()
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.last_decision: dict[str, Any] | None = None  # for NodeMemoryReserve.status

    def use_settings(self, settings: NodeSettings) -> None:
        """A reload: the evictor's grace period, dry run and rate from new settings."""
        self.evictor.grace_period_seconds = settings.eviction.grace_period_seconds
        self.evictor.dry_run = settings.dry_run
        self.evictor.rate.per_minute = settings.eviction.max_evictions_per_minute
        if self.evictor.kill_rate is not None:
            self.evictor.kill_rate.per_minute = settings.eviction.max_evictions_per_minute

    def plan(
        self,
        trigger: StepTrigger,
        detected_at: float | None,
        now: float,
        m: Measurement,
        settings: NodeSettings,
        limit_bytes: int,
        target: int,
        api_connected: bool,
        cgroup_root: Path,
    ) -> EvictionRound:
        """What this step does about ``m`` (measured at ``now``); logs and counts the
        decision, acts on nothing."""
        eviction = settings.eviction
        limits = EvictionLimits(
            target,
            eviction.buffer_bytes,
            eviction.grace_period_seconds,
            eviction.kill_fallback_wait_seconds,
            eviction.kill_fallback,
        )
        order_note = victim_order.description(eviction.policy)
        protected = sum(c.memory_bytes for c in m.candidates if c.protected)
        situation = Situation(
            settings.node_name, m.usage, limit_bytes, trigger.value, order_note, protected
        )
        planner = self.planner
        fallback = planner.fallback(now, m.usage, m.candidates, api_connected, limits)
        if fallback.victims:
            log_event(log, logging.ERROR, "last resort: cgroup.kill", reason=fallback.reason)
            self._decided(trigger, len(fallback.victims), detected_at)
            kills = tuple(_victim(c, m, cgroup_root) for c in fallback.victims)
            return EvictionRound(trigger, now, m, limits, situation, fallback.reason, kills)
        decision = planner.decide(m.candidates, m.usage, now, limits)
        walk: tuple[PodVictim, ...] = ()
        if decision.outcome is DecisionOutcome.VICTIMS:
            self.counters["decisions"] += 1
            self._decided(trigger, len(decision.victims), detected_at)
            walk = tuple(_victim(c, m, cgroup_root) for c in planner.walk(decision, m.candidates))
            log_event(
                log,
                logging.WARNING,
                "evicting newest pods",
                trigger=trigger.value,
                usage=format_size(m.usage),
                target=format_size(target),
                amount_to_free=format_size(decision.amount_to_free),
                victims=[v.name for v in decision.victims],
                reason=decision.reason,
            )
        elif (
            decision.outcome is DecisionOutcome.NO_CANDIDATES
            and planner.last_outcome is not DecisionOutcome.NO_CANDIDATES
        ):  # said once per episode, not on every tick while it lasts
            log_event(
                log,
                logging.ERROR,
                "memory must be freed but no pod may be evicted",
                usage=format_size(m.usage),
                reason=decision.reason,
            )
        planner.last_outcome = decision.outcome
        return EvictionRound(
            trigger, now, m, limits, situation, decision.reason, (), decision, walk
        )

    def act(self, plan: EvictionRound) -> tuple[Done, int] | None:
        """Kill or evict as planned (API calls, backoff sleeps: call without a lock); what
        each victim's action ended in, and how many evictions the rate limit held back.
        None when the plan has nothing to do."""
        if plan.kills:
            done = []
            for victim in plan.kills:
                result = self.evictor.kill(victim, plan.situation)
                done.append((result, self._clock() - plan.now))
            return done, 0
        decision = plan.decision
        if decision is None or decision.outcome is not DecisionOutcome.VICTIMS:
            return None
        limited_before = self.evictor.counts[Outcome.RATE_LIMITED]
        results = self.evictor.evict_until_covered(
            list(plan.walk), decision.amount_to_free, plan.situation
        )
        # a rate-limited pod ends the round without a result of its own
        limited = self.evictor.counts[Outcome.RATE_LIMITED] - limited_before
        latency = self._clock() - plan.now
        return [(r, latency) for r in results], limited

    def record(self, plan: EvictionRound, done: Done, rate_limited: int) -> None:
        """What the actions did: counters, metrics, the planner's memory, ``lastDecision``."""
        self.counters["rate_limited"] += rate_limited
        for result, latency in done:
            if self.metrics is not None:
                memory = result.victim.candidate.memory_bytes
                self.metrics.record_action(result.outcome, memory, latency)
            key = counter_key(result.outcome)
            if key is not None:
                self.counters[key] += 1
        results = [r for r, _ in done]
        if plan.kills:  # a kill the rate limit held back stays chosen, for the next step
            held = Outcome.RATE_LIMITED
            self.planner.killed(
                (r.victim.candidate.id for r in results if r.outcome is not held), plan.now
            )
        else:
            evicted = (Outcome.EVICTED, Outcome.UNREACHABLE)
            # a failed eviction (403, 409, 5xx) backs off and counts toward the fallback
            # exactly like a PDB block; the API server's throttling chose nobody
            refused = (Outcome.BLOCKED, Outcome.FAILED)
            self.planner.evicted(
                [r.victim.candidate.id for r in results if r.outcome in evicted],
                [r.victim.candidate.id for r in results if r.outcome in refused],
                plan.now,
                plan.limits,
            )
        usage, target = plan.measurement.usage, plan.limits.target
        self.last_decision = last_decision(
            plan.trigger,
            usage,
            target,
            results,
            plan.reason,
            datetime.now(UTC),
            plan.situation.protected_bytes,
        )

    def step_done(self, plan: EvictionRound, detected_at: float | None) -> None:
        """After a step's actions were recorded: whether it began or ended an episode (the
        pods measured at its start stand for who is still there), for the duration
        histogram."""
        lasts = self.planner.hold_triggers(plan.measurement.alive)
        started = plan.now if detected_at is None else detected_at
        ended = self.episodes.after_step(started, plan.now, lasts)
        if self.metrics is not None:
            self.metrics.record_episode(ended)

    def _decided(self, trigger: StepTrigger, victims: int, detected_at: float | None) -> None:
        if self.metrics is not None:
            self.metrics.record_decision(trigger, victims, detected_at, self._clock())


def _victim(candidate: Candidate, m: Measurement, cgroup_root: Path) -> PodVictim:
    pod = m.pods.get(candidate.id)
    cgroup = m.cgroups.get(candidate.id)
    if pod is None and not candidate.kill_only:  # only kill-only candidates lack a pod object
        raise KeyError(candidate.id)
    path = cgroup_root / cgroup.path if cgroup is not None else None
    return PodVictim(candidate, pod, path)
