"""How the node agent shows what it sees and did: the ``/status`` JSON, its counters, and the
``lastDecision`` and degraded condition of ``NodeMemoryReserve.status``. Pure: every value
comes in as an argument."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from oomguard.monitor.actions.outcome import Outcome
from oomguard.monitor.actions.pod_evictor import ActionResult
from oomguard.monitor.decision.candidate import Candidate, newest_first_key
from oomguard.monitor.decision.eviction_planner import eviction_order
from oomguard.monitor.decision.memory_pressure import PressureState
from oomguard.monitor.kube.node_reserve import ReserveReport, ReserveState
from oomguard.monitor.kube.pod_candidates import ProtectionRules, protection_reason
from oomguard.monitor.kube.pod_view import kill_only_protection
from oomguard.monitor.modes.node_measurer import Measurement
from oomguard.monitor.triggers.trigger import StepTrigger
from oomguard.wire.node_settings import NodeSettings
from oomguard.wire.times import rfc3339

COUNTERS = (
    "decisions",
    "evicted",
    "blocked",
    "killed",
    "dry_run",
    "rate_limited",
    "memory_high_reasserted",
)
"""The ``counters`` of ``/status``, each from 0."""

# lastDecision.action in the CRD, strongest first: a round that killed says Killed
STATUS_ACTIONS = ("Killed", "Evicted", "DryRun")


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


def last_decision(
    trigger: StepTrigger,
    usage: int,
    target: int,
    results: Sequence[ActionResult],
    reason: str,
    now: datetime,
    protected_bytes: int = 0,
) -> dict[str, Any]:
    """``lastDecision`` for the NodeMemoryReserve status, in the CRD's terms;
    ``protected_bytes``: what protected pods held while the victims were chosen (the Event
    and ``/status`` say it too), so an owner reading the status sees why an older pod went."""
    actions = {status_action(r.outcome) for r in results}
    acted = [r.victim.candidate.name for r in results if status_action(r.outcome) != "None"]
    return {
        "time": rfc3339(now),
        "trigger": status_trigger(trigger),
        "usageBytes": usage,
        "targetBytes": target,
        "protectedMemoryBytes": protected_bytes,
        "victims": acted[:100],
        "action": next((a for a in STATUS_ACTIONS if a in actions), "None"),
        "message": "; ".join(
            [reason] + [f"{r.victim.candidate.name}: {r.outcome.value}" for r in results]
        )[:1024],
    }


def status_json(
    settings: NodeSettings,
    state: ReserveState | None,
    cgroup: str,
    driver: str,
    memory_high: int | None,
    memory_high_set: bool,
    target: int | None,
    m: Measurement | None,
    rules: ProtectionRules,
    monitors: dict[str, Any],
    api_connected: bool,
    counters: dict[str, int],
    errors: Sequence[str],
    last: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The node agent's ``/status`` (``oomguard status`` renders it as a table).
    ``memory_high``: the value set, or in dry run the value that would be set;
    ``last_decision``: whom the last decision chose (in dry run: whom it would evict)."""
    return {
        "mode": "node",
        "node": settings.node_name,
        "cgroup": cgroup,
        "driver": driver,
        "memory_high": memory_high,
        "memory_high_set": memory_high_set,
        "target": target,
        "usage": m.usage if m is not None else None,
        "dry_run": settings.dry_run,
        "settings": settings_status(settings, state),
        "monitors": monitors,
        "api_connected": api_connected,
        "counters": dict(counters),
        "eviction_order": order_status(eviction_order(m.candidates) if m else []),
        "protected": protected_status(m, rules),
        "protected_memory": sum(c.memory_bytes for c in m.candidates if c.protected) if m else 0,
        "errors": list(errors[-10:]),
        "last_decision": dict(last) if last is not None else None,
    }


def settings_status(settings: NodeSettings, state: ReserveState | None) -> dict[str, Any]:
    """Where the enforced settings came from, and what they say."""
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


def order_status(order: Sequence[Candidate]) -> list[dict[str, Any]]:
    """``eviction_order``: who would go first right now."""
    return [
        {
            "pod": c.name,
            "uid": c.id,
            "memory": c.memory_bytes,
            "started_at": c.started_at,
            "rank": c.preference_rank,
        }
        for c in order
    ]


def protected_status(m: Measurement | None, rules: ProtectionRules) -> list[dict[str, Any]]:
    """``protected``: the pods no decision may choose, newest first, and why."""
    if m is None:
        return []
    protected = []
    for c in sorted(m.candidates, key=newest_first_key):
        pod = m.pods.get(c.id)
        cgroup_pod = m.kill_only.get(c.id)
        if pod is not None:
            reason = protection_reason(pod, rules)
        elif cgroup_pod is not None:  # known from its cgroup alone
            reason = kill_only_protection(cgroup_pod, rules.self_uid)
        else:
            reason = None
        if c.protected:
            protected.append(
                {
                    "pod": c.name,
                    "why": reason or "blocked by a PDB or a failed eviction (backing off)",
                }
            )
    return protected


def reserve_report(
    state: ReserveState,
    guarded_cgroup: str,
    memory_high: int | None,
    memory_max: int | None,
    usage: int,
    memory_events: Mapping[str, int],
    problem: tuple[str, str] | None,
    last: Mapping[str, Any] | None,
    pressure: PressureState | None = None,
    pressure_cooldown: float = 0.0,
) -> ReserveReport:
    """What ``NodeMemoryReserve.status`` should say (``problem``: see :func:`degraded`)."""
    return ReserveReport(
        state=state,
        guarded_cgroup=guarded_cgroup,
        memory_high_bytes=memory_high,
        memory_max_bytes=memory_max,
        usage_bytes=usage,
        memory_events=memory_events,
        degraded_reason=problem[0] if problem else None,
        degraded_message=problem[1] if problem else "",
        last_decision=last,
        pressure=pressure if pressure is not None else PressureState(),
        pressure_cooldown=pressure_cooldown,
    )


def degraded(
    memory_high_supported: bool,
    measure_error: str | None,
    monitor_failures: Sequence[str],
    settings_refused: str | None = None,
) -> tuple[str, str] | None:
    """The ``Degraded`` condition's reason and message, None when all is as expected."""
    if settings_refused is not None:
        return ("UnsafeSettings", f"last good settings kept: {settings_refused}")
    if not memory_high_supported:
        return (
            "MemoryHighUnsupported",
            "kernel older than 5.9: memory.high is not set (allocator livelock "
            "risk); threshold and pressure monitors only",
        )
    if measure_error is not None:
        return ("CgroupUnreadable", measure_error)
    if monitor_failures:
        return ("MonitorFailed", monitor_failures[-1])
    return None
