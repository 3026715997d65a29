"""The node agent's monitors: started from a plan, restarted when the plan changes (a new
NodeMemoryReserve, a new target), stopped on the way out; their failures kept for status.

A fixed list (tests, special set-ups) runs unchanged for the whole run instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.feedback.metrics_registry import GuardMetrics
from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError
from oomguard.monitor.kernel.parse_error import ParseError
from oomguard.monitor.triggers.factory import (
    MonitorConfig,
    MonitorFailure,
    MonitorRunner,
    build_monitors,
)
from oomguard.monitor.triggers.kinds.threshold import THRESHOLD
from oomguard.monitor.triggers.monitor_registry import wanted_names
from oomguard.monitor.triggers.trigger import Monitor, MonitorError
from oomguard.monitor.triggers.trigger_inbox import TriggerInbox
from oomguard.wire.sizes import format_size

log = logging.getLogger("oomguard.node")

MonitorBuilder = Callable[[Cgroup, MonitorConfig], list[Monitor]]
MonitorPlan = tuple[MonitorConfig, tuple[str, ...]]  # what to run, and notes on what not


class MonitorSupervisor:
    def __init__(
        self,
        inbox: TriggerInbox,
        cgroup: Cgroup,
        report_error: Callable[[str], None],
        fixed: Sequence[Monitor] | None = None,
        builder: MonitorBuilder = build_monitors,
        metrics: GuardMetrics | None = None,
    ) -> None:
        self._inbox = inbox
        self._cgroup = cgroup
        self._error = report_error
        self.fixed = fixed
        self._build = builder
        self._metrics = metrics
        self._runner: MonitorRunner | None = None
        self.config: MonitorConfig | None = None
        self.notes: tuple[str, ...] = ()
        self.failures: list[str] = []

    def sync(self, plan: Callable[[], MonitorPlan]) -> None:
        """Start the monitors the plan asks for; restart them when that changed."""
        if self.fixed is not None:
            if self._runner is None:
                self._start(list(self.fixed))
            return
        try:
            config, notes = plan()
        except (CgroupError, ParseError, OSError, ValueError) as exc:
            self._error(f"cannot plan monitors for {self._cgroup.path}: {exc}")
            return
        if config == self.config and self._runner is not None:
            return
        self.stop()
        if notes != self.notes:
            for note in notes:
                log_event(log, logging.WARNING, note)
        self.config, self.notes = config, notes
        self.failures.clear()
        monitors = self._build(self._cgroup, config)
        threshold = config.get(THRESHOLD)
        log_event(
            log,
            logging.INFO,
            "monitors started",
            monitors=[m.name for m in monitors],
            threshold=format_size(threshold.limit_bytes) if threshold else None,
        )
        self._start(monitors)

    def _start(self, monitors: list[Monitor]) -> None:
        if self._metrics is not None:
            monitors = self._metrics.tracked(monitors)
        self._runner = self._inbox.runner(monitors)
        self._runner.start()

    def stop(self) -> None:
        if self._runner is not None:
            still = self._runner.stop(2.0)
            if still:
                self._error(f"monitors did not stop within 2s: {', '.join(still)}")
            self._runner = None

    def failed(self, failures: Iterable[MonitorFailure]) -> None:
        for failure in failures:
            verb = "stopped" if isinstance(failure.error, MonitorError) else "crashed"
            message = f"{failure.monitor} monitor {verb}: {failure.error!r}"
            self.failures.append(message)
            self._error(message)

    def status(self) -> dict[str, Any]:
        if self.fixed is not None:
            running = [m.name for m in self.fixed]
        else:
            running = wanted_names(self.config) if self.config is not None else []
        return {"running": running, "notes": list(self.notes), "failures": self.failures[-5:]}
