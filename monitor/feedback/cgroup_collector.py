"""The guarded cgroup as the kernel sees it, read from cgroupfs when Prometheus scrapes.

A custom collector rather than gauges refreshed on a timer: each scrape shows the
kernel's values at that moment, costs nothing between scrapes, and ``memory.events``
stays what it is in the kernel, a set of monotonic counters.

A file that cannot be read or parsed never fails the scrape: its metric is left out
of that scrape and ``oomguard_cgroup_read_errors_total{file=...}`` goes up by one, so a
vanished cgroup or a kernel without some file shows as a rising error counter that an
alert can watch, while the guard's own metrics keep flowing.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError
from oomguard.monitor.kernel.memory_events import MemoryEvents
from oomguard.monitor.kernel.memory_limit import MemoryLimit
from oomguard.monitor.kernel.memory_stat import MemoryStat, working_set_bytes
from oomguard.monitor.kernel.parse_error import ParseError
from oomguard.monitor.kernel.vmstat import VMSTAT, Vmstat, parse_vmstat

log = logging.getLogger(__name__)

PREFIX = "oomguard"
FILES = (
    "memory.current",
    "memory.events",
    "memory.events.local",
    "memory.high",
    "memory.max",
    "memory.stat",
)
"""The cgroupfs files read on each scrape (the ``file`` label of the read-error counter)."""

_T = TypeVar("_T")


def _limit_value(limit: MemoryLimit) -> float:
    """``max`` (no limit) is +Inf: ``usage / limit`` is then 0, which is what it means."""
    return math.inf if limit.bytes is None else float(limit.bytes)


_LIMITS: tuple[tuple[str, Callable[[Cgroup], MemoryLimit], str, str], ...] = (
    ("memory.high", Cgroup.memory_high, "memory_high_bytes", "throttle line"),
    ("memory.max", Cgroup.memory_max, "memory_max_bytes", "OOM line"),
)
"""The limit files exported as gauges: file, how to read it, metric, what the line means."""


class CgroupCollector(Collector):
    """Collects limits, usage, working set and ``memory.events`` of one cgroup directory.

    ``cgroup`` may be ``None`` (nothing guarded yet) and may be replaced at any time
    (a path or a :class:`Cgroup`); a scrape uses whichever is set when it starts.
    """

    def __init__(
        self, cgroup: Cgroup | Path | None = None, vmstat: Path | None = Path(VMSTAT)
    ) -> None:
        self._cgroup: Cgroup | None = None
        self.cgroup = cgroup
        self._vmstat = vmstat
        self._lock = threading.Lock()
        self._errors: dict[str, int] = dict.fromkeys(FILES, 0)
        if vmstat is not None:
            self._errors[str(vmstat)] = 0
        self._failing: set[str] = set()

    @property
    def cgroup(self) -> Cgroup | None:
        return self._cgroup

    @cgroup.setter
    def cgroup(self, cgroup: Cgroup | Path | None) -> None:
        self._cgroup = cgroup if cgroup is None or isinstance(cgroup, Cgroup) else Cgroup(cgroup)

    def describe(self) -> list[Metric]:
        """The metric names this collector can produce (so duplicates are caught at
        registration without reading the cgroup)."""
        return [
            GaugeMetricFamily(f"{PREFIX}_memory_high_bytes", ""),
            GaugeMetricFamily(f"{PREFIX}_memory_max_bytes", ""),
            GaugeMetricFamily(f"{PREFIX}_memory_usage_bytes", ""),
            GaugeMetricFamily(f"{PREFIX}_memory_working_set_bytes", ""),
            CounterMetricFamily(f"{PREFIX}_memory_events", ""),
            CounterMetricFamily(f"{PREFIX}_memory_events_local", ""),
            CounterMetricFamily(f"{PREFIX}_node_oom_kills", ""),
            CounterMetricFamily(f"{PREFIX}_cgroup_read_errors", ""),
        ]

    def collect(self) -> Iterator[Metric]:
        cgroup = self.cgroup
        if cgroup is not None:
            yield from self._collect_cgroup(cgroup)
        vmstat = self._vmstat
        if vmstat is not None:
            read = self._read_file(
                str(vmstat), lambda: parse_vmstat(vmstat.read_bytes(), str(vmstat))
            )
            if read is not None:
                yield from _node_oom_kills(read)
        errors = CounterMetricFamily(
            f"{PREFIX}_cgroup_read_errors",
            "Scrapes in which a file of the guarded cgroup could not be read or parsed "
            "(its metric was left out of that scrape), by file.",
            labels=["file"],
        )
        with self._lock:
            for name, count in self._errors.items():
                errors.add_metric([name], count)
        yield errors

    def _collect_cgroup(self, cgroup: Cgroup) -> Iterator[Metric]:
        for name, read, metric, line in _LIMITS:
            limit = self._read(cgroup, name, read)
            if limit is not None:
                yield GaugeMetricFamily(
                    f"{PREFIX}_{metric}",
                    f"{name} of the guarded cgroup ({line}), in bytes; +Inf when 'max'.",
                    value=_limit_value(limit),
                )
        current = self._read(cgroup, "memory.current", Cgroup.memory_current)
        if current is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_memory_usage_bytes",
                "memory.current of the guarded cgroup: all memory charged to it, in bytes.",
                value=current,
            )
        stat = self._read(cgroup, "memory.stat", _stat_with_working_set)
        if current is not None and stat is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_memory_working_set_bytes",
                "memory.current minus inactive_file of the guarded cgroup, in bytes "
                "(the kubelet's working set).",
                value=working_set_bytes(current, stat),
            )
        events = self._read(cgroup, "memory.events", Cgroup.memory_events)
        if events is not None:
            yield _events_family(events)
        local = self._read(cgroup, "memory.events.local", Cgroup.memory_events_local)
        if local is not None:
            yield _events_family(local, local=True)

    def _read(self, cgroup: Cgroup, name: str, read: Callable[[Cgroup], _T]) -> _T | None:
        """Read and parse one file of the cgroup (see :meth:`_read_file`)."""
        return self._read_file(name, lambda: read(cgroup), f" of {cgroup.path}")

    def _read_file(self, name: str, read: Callable[[], _T], where: str = "") -> _T | None:
        """Read and parse one file; on any failure count it, log the first one, return None."""
        try:
            value = read()
        except (CgroupError, OSError, ParseError) as exc:
            with self._lock:
                self._errors[name] = self._errors.get(name, 0) + 1
                first = name not in self._failing
                self._failing.add(name)
            if first:
                log.warning("cannot read %s%s for metrics: %s", name, where, exc)
            return None
        if name in self._failing:
            with self._lock:
                self._failing.discard(name)
            log.info("%s%s is readable again", name, where)
        return value


def _stat_with_working_set(cgroup: Cgroup) -> MemoryStat:
    """memory.stat, failing (as a parse error) when it lacks the working-set key."""
    stat = cgroup.memory_stat()
    stat.require("inactive_file")
    return stat


def _events_family(events: MemoryEvents, local: bool = False) -> CounterMetricFamily:
    if local:
        family = CounterMetricFamily(
            f"{PREFIX}_memory_events_local",
            "memory.events.local counters of the guarded cgroup, by event: its own events, "
            "not its descendants'. oom rises only when the guarded cgroup's own limit was "
            "the OOM domain, never for a pod or container hitting its own memory.max.",
            labels=["event"],
        )
    else:
        family = CounterMetricFamily(
            f"{PREFIX}_memory_events",
            "memory.events counters of the guarded cgroup and everything below it, by event "
            "(low, high, max, oom, oom_kill, oom_group_kill, and any key a newer kernel adds); "
            "oom_kill counts every container OOM kill in the subtree.",
            labels=["event"],
        )
    for key, value in events.counters.items():
        family.add_metric([key], value)
    return family


def _node_oom_kills(vmstat: Vmstat) -> Iterator[CounterMetricFamily]:
    """/proc/vmstat oom_kill; a kernel older than 4.13 has none and gets no series."""
    if "oom_kill" in vmstat.counters:
        yield CounterMetricFamily(
            f"{PREFIX}_node_oom_kills",
            "OOM kills on the whole machine since boot (/proc/vmstat oom_kill): machine-wide "
            "OOMs and every cgroup OOM, inside the guarded cgroup or not.",
            value=vmstat.oom_kill,
        )
