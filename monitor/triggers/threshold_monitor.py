"""Threshold monitor: poll a usage figure every ``interval`` seconds, trigger while above a limit.

It is the safety net under the event monitor: memory.events only moves when the
*guarded cgroup* hits its limits, while host-wide usage (``MemTotal - MemAvailable``)
also sees memory that escaped the cgroup (tmpfs/shmem charged elsewhere, kernel
memory, other cgroups). It is level-triggered: every poll above the limit emits a
Trigger (kind THRESHOLD) with ``{"usage": bytes, "limit": bytes}``; the decision
layer's in-flight rule keeps repeated triggers from killing twice. After a trigger it
polls no more until the loop has taken it (``consumption.py``), then goes on at its
interval. A cgroup's working set needs memory.stat only when memory.current alone is
above the limit.

Read failures: unparsable contents are logged and the poll skipped; a removed cgroup
or an unreadable file ends the monitor with :class:`MonitorError`.
"""

from __future__ import annotations

import dataclasses
import logging
import select
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError, CgroupGone
from oomguard.monitor.kernel.meminfo import parse_meminfo
from oomguard.monitor.kernel.parse_error import ParseError
from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.monitor.triggers.consumption import Consumption
from oomguard.monitor.triggers.trigger import (
    MonitorError,
    MonitorTargetGone,
    Trigger,
    TriggerKind,
    TriggerSink,
)

log = logging.getLogger(__name__)


class UsageSource(Protocol):
    """Where the usage figure comes from; ``read`` returns bytes in use."""

    name: str

    def read(self) -> int: ...

    def upper_bound(self) -> int | None:
        """A cheap figure usage never exceeds (None: none): at or under the limit, the
        poll needs no full reading."""


class CgroupWorkingSet:
    """``memory.current - inactive_file`` of one cgroup (the kubelet's working set)."""

    name = "cgroup working set"

    def __init__(self, cgroup: Cgroup) -> None:
        self.cgroup = cgroup

    def read(self) -> int:
        return self.cgroup.working_set()

    def upper_bound(self) -> int | None:
        """memory.current alone: the working set is that minus inactive_file, so while
        memory.current is under the limit memory.stat need not be read and parsed."""
        try:
            return self.cgroup.memory_current()
        except ParseError:
            return None  # the full reading says what is wrong


class HostMemoryUsed:
    """``MemTotal - MemAvailable`` from /proc/meminfo: everything in use on the host."""

    name = "host memory used"

    def __init__(self, meminfo: Path = Path("/proc/meminfo")) -> None:
        self.meminfo = meminfo

    def read(self) -> int:
        try:
            data = self.meminfo.read_bytes()
        except OSError as exc:
            raise CgroupError(f"cannot read {self.meminfo}: {exc.strerror}") from exc
        return parse_meminfo(data, str(self.meminfo)).used_bytes

    def upper_bound(self) -> int | None:
        return None


def above_limit(usage: int, limit: int) -> bool:
    """Strictly above: sitting exactly at the limit is the target, not a breach."""
    return usage > limit


class ThresholdMonitor:
    """Polls ``source`` and triggers while its usage is above ``limit_bytes``."""

    def __init__(
        self,
        source: UsageSource,
        limit_bytes: int,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        name: str = "threshold",
    ) -> None:
        """``name``: as the registry calls it (``hostMemory`` polls the host's memory)."""
        self.name = name
        if limit_bytes <= 0:
            raise ValueError(f"threshold limit must be positive, not {limit_bytes}")
        if interval <= 0:
            raise ValueError(f"threshold interval must be positive, not {interval}")
        self.source = source
        self.limit_bytes = limit_bytes
        self.interval = interval
        self._clock = clock

    def run(self, sink: TriggerSink, stop: StopSignal) -> None:
        pending = Consumption()
        try:
            waiter = select.poll()
            waiter.register(stop.fileno(), select.POLLIN)
            waiter.register(pending.fileno(), select.POLLIN)

            def send(trigger: Trigger) -> None:
                sink(dataclasses.replace(trigger, on_consumed=pending.consumed))

            while not stop.is_set():
                if self.poll_once(send):
                    # nothing new to say until the loop took it: no polls meanwhile
                    ready = {fd for fd, _ in waiter.poll()}
                    if stop.fileno() in ready:
                        return
                    pending.reset()
                if stop.wait(self.interval):
                    return
        finally:
            pending.close()

    def poll_once(self, sink: TriggerSink) -> bool:
        """One poll: read usage, trigger if above the limit; whether it triggered."""
        try:
            bound = self.source.upper_bound()
            if bound is not None and not above_limit(bound, self.limit_bytes):
                return False  # under the limit for sure: no full reading needed
            usage = self.source.read()
        except ParseError as exc:
            log.warning("skipping a %s reading: %s", self.source.name, exc)
            return False
        except CgroupGone as exc:
            raise MonitorTargetGone(f"cannot read {self.source.name}: {exc}") from exc
        except CgroupError as exc:
            raise MonitorError(f"cannot read {self.source.name}: {exc}") from exc
        if not above_limit(usage, self.limit_bytes):
            return False
        detail = {"usage": usage, "limit": self.limit_bytes}
        sink(Trigger(TriggerKind.THRESHOLD, self._clock(), detail))
        return True
