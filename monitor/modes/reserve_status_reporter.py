"""Keeps ``NodeMemoryReserve/<node>.status`` current from what the node agent measured and did.

Writes are driven by change, not by time: a new generation, memory.high, a condition, a
memory.events counter or a decision is written at most ``min_interval`` after it happened;
usage alone only refreshes the status every ``refresh_interval``; the ``MemoryPressure``
condition coming or going is written at once. That keeps one PATCH per node per minute in
calm times (1,000 nodes: ~17 writes/s to the apiserver) while an incident still shows up
within seconds. Nothing is written while the node has no object.

The reporter sleeps until the agent says something changed (its :class:`ChangeNotice`,
raised after every step and settings change) or until the next write falls due, so an idle
node wakes it once per ``refresh_interval``, not twice a second.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from oomguard.monitor.kube.node_reserve import ReserveReport, reserve_status
from oomguard.monitor.runtime.change_notice import ChangeNotice
from oomguard.monitor.runtime.poller import PollerFactory, new_poller
from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.wire.memory_pressure import MEMORY_PRESSURE

log = logging.getLogger("oomguard.node")

# Fields whose change alone does not warrant a write before the refresh interval.
_VOLATILE = ("lastUpdateTime", "usageBytes", "usage")


class StatusWriter(Protocol):
    def write(self, status: Mapping[str, Any]) -> bool: ...


def significant(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status without the fields that move all the time (pure)."""
    return {key: value for key, value in status.items() if key not in _VOLATILE}


def pressure_status(status: Mapping[str, Any] | None) -> str | None:
    """The ``MemoryPressure`` condition's status in a status body (pure)."""
    for entry in (status or {}).get("conditions") or []:
        if entry.get("type") == MEMORY_PRESSURE:
            return str(entry.get("status"))
    return None


class ReserveStatusReporter:
    def __init__(
        self,
        report: Callable[[], ReserveReport | None],
        writer: StatusWriter,
        *,
        min_interval: float = 2.0,
        refresh_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._report = report
        self._writer = writer
        self._min_interval = min_interval
        self._refresh_interval = refresh_interval
        self._clock = clock
        self._wall_clock = wall_clock
        self._written: dict[str, Any] | None = None
        self._written_at: float | None = None
        self._due_at: float | None = None  # when report_once next has something to write
        self.writes = 0
        self.errors = 0

    def run(
        self, stop: StopSignal, changes: ChangeNotice, poller_factory: PollerFactory = new_poller
    ) -> None:
        """Report now, then whenever ``changes`` is raised or a write falls due, until
        ``stop``."""
        poller = poller_factory()
        poller.register(stop.fileno(), select.POLLIN)
        poller.register(changes.fileno(), select.POLLIN)
        while not stop.is_set():
            changes.reset()  # before reading: a change during the report wakes us again
            self.report_once()
            wait = self.seconds_until_due()
            poller.poll(None if wait is None else max(0.0, wait) * 1000)

    def seconds_until_due(self) -> float | None:
        """How long the last report can stand; None: until something changes."""
        return None if self._due_at is None else self._due_at - self._clock()

    def report_once(self) -> bool:
        """Write the status if it is due; True when a write happened."""
        report = self._report()
        if report is None or report.state.from_defaults:
            self._written = None  # a new object starts from scratch
            self._due_at = None  # its arrival is a change: the agent says so
            return False
        status = reserve_status(report, self._written, self._wall_clock())
        now = self._clock()
        since = None if self._written_at is None else now - self._written_at
        changed = self._written is None or significant(status) != significant(self._written)
        # pressure coming or going is written at once: the operator's taint follows it
        urgent = self._written is not None and (
            pressure_status(status) != pressure_status(self._written)
        )
        due = (
            since is None
            or urgent
            or (since >= self._refresh_interval or (changed and since >= self._min_interval))
        )
        if not due:
            assert self._written_at is not None  # due when nothing was written yet
            self._due_at = self._written_at + (
                self._min_interval if changed else self._refresh_interval
            )
            return False
        try:
            written = self._writer.write(status)
        except Exception as exc:  # the API may be away; try again after the debounce
            self.errors += 1
            log.warning("cannot write NodeMemoryReserve status: %s", exc)
            self._due_at = now + self._min_interval
            return False
        self._written_at = now
        if not written:  # the object is gone (deleted between the watch and this write)
            self._written = None
            self._due_at = None  # a new object arrives through the reserve watch: a change
            return False
        self._due_at = now + self._refresh_interval
        self._written = status
        self.writes += 1
        return True
