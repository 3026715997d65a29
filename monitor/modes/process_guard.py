"""One process guard, as ``guard -- CMD``, ``guard --cgroup`` and the sidecar all run it.

Each of them gets a cgroup ready its own way (creates one for a command, takes an existing
one, splits a pod's workload into a workers leaf), applies limits and sets up metrics; then
the same assembly follows: a :class:`ProcessTarget` over the cgroup's processes (some
protected), the monitors the settings ask for (tracked in the metrics), the :class:`Guard`
loop in its own thread, and on the way out the loop stopped, its victims waited for, and
the run described for ``--report``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping

from oomguard.monitor.actions.outcome import Outcome
from oomguard.monitor.actions.process_target import THROTTLED_PATIENCE, KillRecord, ProcessTarget
from oomguard.monitor.feedback.metrics_registry import GuardMetrics
from oomguard.monitor.feedback.report import GuardReport
from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError
from oomguard.monitor.modes.guard import Guard, GuardSettings
from oomguard.monitor.modes.guard_cgroup import tree_pids
from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.monitor.triggers.factory import build_monitors
from oomguard.monitor.triggers.monitor_registry import guard_names

VICTIM_WAIT_AFTER_GRACE = 12.0  # seconds: SIGKILL's exit wait and some slack


def guard_settings(
    memory_high: int,
    memory_max: int | None,
    buffer: int | None,
    grace: float,
    dry_run: bool,
    *,
    throttled_grace: float = THROTTLED_PATIENCE,
    threshold_interval: float | None = None,
    monitor_names: Iterable[str] = guard_names(),
    set_memory_high: bool = True,
    target_may_end: bool = False,
) -> GuardSettings:
    """GuardSettings with the defaults every process guard uses: a buffer of 5% of
    memory.high, and victims counted in flight for the grace period plus 2 s."""
    return GuardSettings(
        memory_high=memory_high,
        memory_max=memory_max,
        buffer=buffer if buffer is not None else memory_high // 20,
        grace=grace,
        in_flight_timeout=grace + 2.0,
        dry_run=dry_run,
        throttled_grace=throttled_grace,
        threshold_interval=threshold_interval,
        monitor_names=frozenset(monitor_names),
        set_memory_high=set_memory_high,
        target_may_end=target_may_end,
    )


def victim_recorder(
    metrics: GuardMetrics, log_victim: Callable[[KillRecord], None]
) -> Callable[[KillRecord], None]:
    """ProcessTarget's ``on_record``: log the victim, and count it in the metrics."""

    def record(victim: KillRecord) -> None:
        log_victim(victim)
        metrics.record_kill(victim)

    return record


class ProcessGuard:
    """The guard loop over one cgroup's processes, running in its own thread."""

    def __init__(
        self,
        cgroup: Cgroup,
        settings: GuardSettings,
        metrics: GuardMetrics,
        stop: StopSignal,
        log_victim: Callable[[KillRecord], None],
        protected: frozenset[int] = frozenset(),
        thread_name: str = "oomguard-guard",
        measured: Cgroup | None = None,
    ) -> None:
        """Victims are ``cgroup``'s processes; ``measured`` (default ``cgroup``) is the
        cgroup whose usage counts against the line and whose events and usage the monitors
        watch: the sidecar measures the whole workload container, as a worker's first
        allocations stay charged to the main leaf it was born in."""
        measured = cgroup if measured is None else measured
        self.cgroup = cgroup
        self.settings = settings
        self.stop = stop
        self.target = ProcessTarget(
            lambda: tree_pids(cgroup),
            protected,
            grace=settings.grace,
            # no memory.high written, no penalty sleep to look for
            throttled_patience=(
                settings.throttled_grace if settings.memory_high_to_write is not None else None
            ),
            dry_run=settings.dry_run,
            on_record=self._on_record,
        )
        self._record_victim = victim_recorder(metrics, log_victim)
        monitors = metrics.tracked(build_monitors(measured, settings.monitors))
        self.guard = Guard(measured, self.target, monitors, settings, metrics=metrics)
        self.thread = threading.Thread(target=self.guard.run, args=(stop,), name=thread_name)

    def start(self) -> None:
        self.thread.start()

    def _on_record(self, victim: KillRecord) -> None:
        """A victim's fate is known: wake the loop first when it exited, then log it."""
        if victim.outcome is Outcome.EXITED:
            self.guard.victim_exited()
        self._record_victim(victim)

    def wait(self) -> None:
        """Until the loop ends (its stop signal was set, e.g. by a signal handler).

        A join without a timeout: no periodic wake-up. Signal handlers still run during it
        (a lock wait is interruptible on POSIX), and the relay's handler sets the stop
        signal that ends the loop, and so this wait."""
        self.thread.join()

    def finish(self) -> None:
        """Stop the loop and wait for the victims it is still stopping."""
        self.stop.set()
        self.thread.join(5.0)
        self.target.wait_idle(self.settings.grace + VICTIM_WAIT_AFTER_GRACE)

    def report(
        self,
        *,
        command: tuple[str, ...] | None,
        exit_status: int | None,
        started_at: float,
        events_start: Mapping[str, int],
        events_final: Mapping[str, int],
    ) -> GuardReport:
        return run_report(
            self.settings,
            self.cgroup,
            self.guard,
            self.target,
            command=command,
            exit_status=exit_status,
            started_at=started_at,
            events_start=events_start,
            events_final=events_final,
        )


def run_report(
    settings: GuardSettings,
    cgroup: Cgroup,
    guard: Guard,
    target: ProcessTarget,
    *,
    command: tuple[str, ...] | None,
    exit_status: int | None,
    started_at: float,
    events_start: Mapping[str, int],
    events_final: Mapping[str, int],
) -> GuardReport:
    """What one run did, for ``--report`` (a command run and a guarded cgroup alike)."""
    return GuardReport(
        command=command,
        cgroup=str(cgroup.path),
        memory_high=settings.memory_high,
        memory_max=settings.memory_max,
        buffer=settings.buffer,
        grace=settings.grace,
        dry_run=settings.dry_run,
        exit_status=exit_status,
        started_at=started_at,
        victims=target.records,
        decisions=guard.decisions,
        memory_events_start=events_start,
        memory_events_final=events_final,
        errors=guard.errors,
    )


def events_or_empty(cgroup: Cgroup) -> dict[str, int]:
    """memory.events' counters; empty once the cgroup is gone or unreadable."""
    with contextlib.suppress(CgroupError, ValueError):
        return dict(cgroup.memory_events().counters)
    return {}
