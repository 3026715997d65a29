"""Pressure monitor: a PSI trigger on ``memory.pressure``, woken by ``POLLPRI``.

The kernel itself measures stall time and wakes us when tasks were stalled on
memory for ``stall_us`` within any ``window_us`` (at most once per window). This
notices trouble that neither counters nor usage show, e.g. heavy reclaim well
below the limits. The file is opened ``O_RDWR|O_NONBLOCK`` and the trigger written
once; the trigger lives as long as the fd. Emits Trigger (kind PRESSURE) with
``{"stall_us", "window_us"}`` and, when readable, ``some_total_us``.

``POLLERR`` (or ``POLLNVAL``/``POLLHUP``) on the fd means the cgroup was removed:
:class:`MonitorError`. Works on /proc/pressure/memory too (host-wide).
"""

from __future__ import annotations

import errno
import os
import select
import time
from collections.abc import Callable
from pathlib import Path

from oomguard.monitor.kernel.cgroupfs import Cgroup
from oomguard.monitor.kernel.memory_pressure import PsiTrigger, parse_memory_pressure
from oomguard.monitor.kernel.parse_error import ParseError
from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.monitor.triggers.trigger import MonitorError, Trigger, TriggerKind, TriggerSink

_BROKEN = select.POLLERR | select.POLLNVAL | select.POLLHUP


class PressureMonitor:
    """Triggers when the kernel's PSI trigger on ``pressure_file`` fires."""

    name = "pressure"

    def __init__(
        self,
        pressure_file: Path,
        trigger: PsiTrigger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pressure_file = pressure_file
        self.trigger = trigger
        self._clock = clock

    @classmethod
    def for_cgroup(cls, cgroup: Cgroup, trigger: PsiTrigger) -> PressureMonitor:
        return cls(cgroup.file("memory.pressure"), trigger)

    def run(self, sink: TriggerSink, stop: StopSignal) -> None:
        fd = self._open_with_trigger()
        try:
            poller = select.poll()
            poller.register(fd, select.POLLPRI)
            poller.register(stop.fileno(), select.POLLIN)
            while not stop.is_set():
                ready = dict(poller.poll())
                if stop.fileno() in ready or stop.is_set():
                    return
                events = ready.get(fd, 0)
                if events & _BROKEN:
                    raise MonitorError(
                        f"{self.pressure_file} reported an error: the cgroup is gone "
                        "(or its PSI trigger was dropped)"
                    )
                if events & select.POLLPRI:
                    sink(Trigger(TriggerKind.PRESSURE, self._clock(), self._detail(fd)))
        finally:
            os.close(fd)

    def _open_with_trigger(self) -> int:
        path = self.pressure_file
        try:
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise MonitorError(f"{path} does not exist (cgroup gone, or PSI disabled)") from exc
            raise MonitorError(f"cannot open {path}: {exc.strerror}") from exc
        try:
            os.write(fd, self.trigger.encode())
        except OSError as exc:
            os.close(fd)
            hint = ""
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                hint = " (kernel without PSI triggers, or PSI disabled: boot with psi=1)"
            raise MonitorError(
                f"cannot set PSI trigger {self.trigger.encode()[:-1].decode()!r} on {path}: "
                f"{exc.strerror}{hint}"
            ) from exc
        return fd

    def _detail(self, fd: int) -> dict[str, int]:
        detail = {"stall_us": self.trigger.stall_us, "window_us": self.trigger.window_us}
        try:
            pressure = parse_memory_pressure(os.pread(fd, 4096, 0), str(self.pressure_file))
        except (OSError, ParseError):
            return detail  # the totals are a nicety; the trigger itself is what matters
        detail["some_total_us"] = pressure.some.total_us
        return detail
