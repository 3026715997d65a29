"""What the guard did, as Prometheus metrics: decisions, victims, actions, latencies.

These are event-driven: the guard loop and the node agent call one method per thing
that happened (``record_decision``, ``record_action``, ``set_monitor_up``). What the
kernel says about the guarded cgroup (limits, usage, ``memory.events``) is *not* kept
here: :mod:`oomguard.monitor.feedback.cgroup_collector` reads it at scrape time.

Every metric lives in one dedicated :class:`CollectorRegistry` (never the global one),
so two guards in one process, or two tests, never see each other's numbers. Label
values come from closed sets (trigger kinds, outcomes, monitor names) so the series
count stays fixed; there are no per-pod or per-process labels, and the node's identity
comes from the scrape target's labels.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from oomguard import __version__
from oomguard.monitor.actions.outcome import Outcome
from oomguard.monitor.actions.process_target import KillRecord
from oomguard.monitor.feedback.cgroup_collector import CgroupCollector
from oomguard.monitor.feedback.monitor_label import MonitorName as MonitorName
from oomguard.monitor.feedback.monitor_label import monitor_name_enum as monitor_name_enum
from oomguard.monitor.kernel.cgroupfs import Cgroup
from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.monitor.triggers.trigger import (
    Monitor,
    StepTrigger,
    Trigger,
    TriggerKind,
    TriggerSink,
)

log = logging.getLogger(__name__)

PREFIX = "oomguard"

# In the text format Prometheus scrapes (0.0.4), each counter's and histogram's creation
# time shows up as an extra ``*_created`` gauge series: twice the series for nothing
# dashboards use. The switch is process-wide in prometheus_client; oomguard owns its process.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The exposition format :meth:`GuardMetrics.exposition` renders (Prometheus text 0.0.4)."""

# From "the agent answered at once" to "a scan took a long time on a busy node".
DETECTION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Signals land in milliseconds; an eviction waits on the API server and a pod's grace period.
ACTION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# An episode ends once victims are gone: a process in milliseconds, a pod after its grace
# period (10 s by default), a PDB-blocked round after the kill fallback's wait.
EPISODE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class ActionOutcome(StrEnum):
    """How one attempt to free memory ended (the ``outcome`` label of the actions counter)."""

    EVICTED = "evicted"  # the Eviction API accepted it
    PDB_BLOCKED = "pdb_blocked"  # 429: a PodDisruptionBudget refused; the next candidate is tried
    KILLED = "killed"  # signalled / cgroup.kill, and it is gone
    GONE = "gone"  # the victim had already exited (404, ESRCH): nothing was freed by us
    FAILED = "failed"  # any other error (incl. API unreachable, a process stuck after SIGKILL)
    RATE_LIMITED = "rate_limited"  # not tried: the evictions-per-minute budget was spent
    DRY_RUN = "dry_run"  # not tried: dry run, would have acted

    @classmethod
    def of(cls, value: ActionOutcome | Outcome | str) -> ActionOutcome:
        """The label for an action's :class:`Outcome` (or its value: ``blocked-by-pdb``,
        ``cgroup-killed``, ``exited``...) or for a label's value; ``ValueError`` otherwise."""
        if isinstance(value, ActionOutcome):
            return value
        if isinstance(value, Outcome):
            return action_label(value)
        try:
            return action_label(Outcome(value))
        except ValueError:
            return cls(value)


def action_label(outcome: Outcome) -> ActionOutcome:
    """The ``outcome`` label of an action's outcome (a process that exited after our signal
    counts as killed; every error, including a stuck process, as failed)."""
    match outcome:
        case Outcome.EVICTED:
            return ActionOutcome.EVICTED
        case Outcome.BLOCKED:
            return ActionOutcome.PDB_BLOCKED
        case Outcome.KILLED | Outcome.EXITED:
            return ActionOutcome.KILLED
        case Outcome.GONE:
            return ActionOutcome.GONE
        case Outcome.FAILED | Outcome.UNREACHABLE | Outcome.STUCK:
            return ActionOutcome.FAILED
        case Outcome.RATE_LIMITED:
            return ActionOutcome.RATE_LIMITED
        case Outcome.DRY_RUN:
            return ActionOutcome.DRY_RUN


DecisionTrigger = StepTrigger
"""The ``trigger`` label of ``oomguard_decisions_total``: what the step answered."""
RECHECK = StepTrigger.RECHECK


class _TrackedMonitor:
    """A monitor that reports whether it is running (see :meth:`GuardMetrics.tracked`)."""

    def __init__(self, monitor: Monitor, metrics: GuardMetrics) -> None:
        self.monitor = monitor
        self.name = monitor.name
        self._metrics = metrics
        try:
            self._label: StrEnum | None = MonitorName(monitor.name)
        except ValueError:
            log.warning("monitor %r has no oomguard_monitor_up series", monitor.name)
            self._label = None

    def run(self, sink: TriggerSink, stop: StopSignal) -> None:
        if self._label is not None:
            self._metrics.set_monitor_up(self._label, True)
        try:
            self.monitor.run(sink, stop)
        finally:
            if self._label is not None:
                self._metrics.set_monitor_up(self._label, False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.monitor, name)


def decision_trigger(kinds: str) -> DecisionTrigger:
    """The label for a trigger spelled as text (see :meth:`StepTrigger.parse`): several
    monitors at once count once, for the one that notices first by design; anything else
    raises ``ValueError``."""
    return StepTrigger.parse(kinds)


class GuardMetrics:
    """The metrics of one guard (``oomguard guard``) or node agent, in their own registry.

    ``mode`` is ``guard``, ``node`` or ``sidecar``; it only goes into ``oomguard_build_info``.
    ``cgroup`` is the guarded cgroup's directory; it can be given (or replaced) later with
    :meth:`watch_cgroup`, e.g. when the guard creates its cgroup after start-up.
    """

    def __init__(
        self,
        mode: str,
        cgroup: Cgroup | Path | None = None,
        *,
        kernel_release: str | None = None,
        version: str = __version__,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.build_info = Info(
            f"{PREFIX}_build",
            "oomguard's version, its mode and the kernel it runs on (value is always 1).",
            registry=reg,
        )
        self.build_info.info(
            {
                "version": version,
                "mode": mode,
                "kernel": platform.release() if kernel_release is None else kernel_release,
            }
        )
        self.decisions = Counter(
            f"{PREFIX}_decisions",
            "Decisions that memory must be freed, by what led to them (event, threshold, "
            "pressure, recheck); one that finds nobody it may stop chooses no victim.",
            ["trigger"],
            registry=reg,
        )
        self.victims = Counter(
            f"{PREFIX}_victims",
            "Victims (pods or processes) chosen to free memory.",
            registry=reg,
        )
        self.actions = Counter(
            f"{PREFIX}_actions",
            "Attempts to free memory (evict a pod, kill a process), by outcome.",
            ["outcome"],
            registry=reg,
        )
        self.freed = Counter(
            f"{PREFIX}_freed_bytes",
            "Memory the victims held when they were evicted or killed, in bytes.",
            registry=reg,
        )
        self.detection_latency = Histogram(
            f"{PREFIX}_detection_latency_seconds",
            "Seconds from a monitor noticing trouble (inotify wake-up, poll, PSI event) "
            "to the decision, by trigger kind.",
            ["trigger"],
            buckets=DETECTION_BUCKETS,
            registry=reg,
        )
        self.action_latency = Histogram(
            f"{PREFIX}_decision_to_action_seconds",
            "Seconds from a decision to the result of acting on one of its victims: the "
            "Eviction API's answer or cgroup.kill for a pod, exit after SIGTERM for a process.",
            buckets=ACTION_BUCKETS,
            registry=reg,
        )
        self.episode_duration = Histogram(
            f"{PREFIX}_episode_duration_seconds",
            "Seconds from a breach (the trigger of the first step that found memory to free) "
            "until a step found usage back under target with the victims gone.",
            buckets=EPISODE_BUCKETS,
            registry=reg,
        )
        self.monitor_up = Gauge(
            f"{PREFIX}_monitor_up",
            "1 while a monitor is running and watching, 0 when it stopped or failed; "
            "absent for monitors this configuration does not use.",
            ["monitor"],
            registry=reg,
        )
        # Every series that can exist exists from the start at 0, so rate() and
        # increase() see the first event instead of a series appearing from nothing.
        for trigger in DecisionTrigger:
            self.decisions.labels(trigger=trigger.value)
        for kind in TriggerKind:
            self.detection_latency.labels(trigger=kind.value)
        for outcome in ActionOutcome:
            self.actions.labels(outcome=outcome.value)
        self.cgroup_collector = CgroupCollector(cgroup)
        reg.register(self.cgroup_collector)
        # The standard process_* series (CPU seconds, resident memory, open fds): what the
        # guard itself costs, under the names every Prometheus user already knows.
        ProcessCollector(registry=reg)

    def watch_cgroup(self, cgroup: Cgroup | Path | None) -> None:
        """Read limits, usage and ``memory.events`` from this cgroup directory from now on."""
        self.cgroup_collector.cgroup = cgroup

    def record_decision(
        self,
        trigger: Trigger | TriggerKind | StepTrigger | str,
        victims: int,
        detected_at: float | None = None,
        decided_at: float | None = None,
    ) -> None:
        """One decision to free memory, taken because of ``trigger``, choosing ``victims``.

        ``trigger`` is a :class:`Trigger`, its kind, what a loop's step answered, or one of
        those spelled as text (``"event"``..., ``"recheck"``). ``detected_at`` (defaults to
        the Trigger's) and ``decided_at`` are ``time.monotonic()`` readings; the latency
        sample is taken when both are known and a monitor noticed (a re-check detects
        nothing).

        Never raises: it runs inside the guard loop. A spelling outside the label set is
        logged and not counted (a test maps every spelling the loops use).
        """
        if isinstance(trigger, Trigger):
            kind = StepTrigger.of([trigger.kind])
            detected_at = trigger.detected_at if detected_at is None else detected_at
        elif isinstance(trigger, TriggerKind):
            kind = StepTrigger.of([trigger])
        elif isinstance(trigger, StepTrigger):
            kind = trigger
        else:
            try:
                kind = StepTrigger.parse(trigger)
            except ValueError:
                log.error("metrics: decision trigger %r has no label; not counted", trigger)
                return
        self.decisions.labels(trigger=kind.value).inc()
        self.victims.inc(max(0, victims))
        if detected_at is not None and decided_at is not None and kind is not RECHECK:
            latency = max(0.0, decided_at - detected_at)
            self.detection_latency.labels(trigger=kind.value).observe(latency)

    def record_action(
        self,
        outcome: ActionOutcome | Outcome | str,
        bytes_freed: int = 0,
        latency_seconds: float | None = None,
    ) -> None:
        """One action on one victim ended with ``outcome``.

        ``outcome`` is an action's :class:`Outcome` or a label (see :meth:`ActionOutcome.of`).
        ``bytes_freed`` is what the victim held (only counted for evicted/killed);
        ``latency_seconds`` the time since the decision that chose it.

        Never raises: it runs inside the guard loop. An outcome outside the closed label set
        is logged and not counted (a test maps every outcome the action modules define).
        """
        try:
            result = ActionOutcome.of(outcome)
        except ValueError:
            log.error("metrics: action outcome %r has no label; not counted", outcome)
            return
        self.actions.labels(outcome=result.value).inc()
        if bytes_freed > 0 and result in (ActionOutcome.EVICTED, ActionOutcome.KILLED):
            self.freed.inc(bytes_freed)
        if latency_seconds is not None:
            self.action_latency.observe(max(0.0, latency_seconds))

    def record_episode(self, seconds: float | None) -> None:
        """An episode ended after ``seconds`` (see ``decision/episode.py``); None: no episode
        ended at this step, nothing to record."""
        if seconds is not None:
            self.episode_duration.observe(max(0.0, seconds))

    def record_kill(self, record: KillRecord) -> None:
        """One process victim's end, as :class:`ProcessTarget` reports it (its ``on_record``).

        The latency is SIGTERM to exit: the first signal goes out right after the decision.
        """
        latency = None
        if record.exited_at is not None and record.signalled_at is not None:
            latency = record.exited_at - record.signalled_at
        self.record_action(record.outcome, record.memory_bytes, latency)

    def tracked(self, monitors: Iterable[Monitor]) -> list[Monitor]:
        """The same monitors, each keeping ``oomguard_monitor_up`` for its name: 1 while its
        ``run`` is running, 0 once it returned or raised. Wire it where monitors are built:
        ``monitors = metrics.tracked(monitors)``. A name outside the label set is left
        unexported (and logged) rather than failing the monitor."""
        return [_TrackedMonitor(monitor, self) for monitor in monitors]

    def set_monitor_up(self, monitor: StrEnum | str, up: bool) -> None:
        """Mark a monitor as watching (``up=True``) or stopped/failed (``False``)."""
        self.monitor_up.labels(monitor=MonitorName(monitor).value).set(1 if up else 0)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (what ``GET /metrics`` returns)."""
        return generate_latest(self.registry)

    def route(self) -> tuple[int, str, bytes]:
        """``/metrics`` for :class:`~oomguard.monitor.feedback.http_endpoints.HttpEndpoints`:
        ``endpoints.add_route("/metrics", metrics.route)``."""
        return 200, CONTENT_TYPE, self.exposition()
