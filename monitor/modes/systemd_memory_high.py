"""Kubepods ``memory.high`` told to systemd too, on nodes whose kubelet uses the systemd
cgroup driver: there ``kubepods.slice`` is a systemd unit, and systemd rewrites the cgroup's
``memory.high`` from its own ``MemoryHigh=`` whenever it re-applies the unit (the kubelet
updates the slice, any ``daemon-reload``), undoing a write to cgroupfs alone.

The cgroupfs write stays the one that counts; this only keeps systemd's copy the same. A
failed call is logged (once per streak of failures) and counted, never fatal, and tried
again after ``retry_seconds`` or as soon as the value changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Protocol

from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.kernel.memory_limit import MemoryLimit
from oomguard.monitor.kube.pod_cgroups import CgroupDriver, KubepodsLocation
from oomguard.monitor.systemd.dbus_connection import DBusError
from oomguard.monitor.systemd.dbus_values import (
    DBusWireError,
)
from oomguard.monitor.systemd.unit_memory import BusKind, SystemdUnits

log = logging.getLogger("oomguard.node")

RETRY_SECONDS = 30.0


class SystemdDBus(Enum):
    """``--systemd-dbus``: ``auto`` talks to systemd on systemd-driver nodes whose bus socket
    exists; ``on`` on every systemd-driver node (a missing socket counts as a failure);
    ``off`` never."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


class UnitMemorySetter(Protocol):
    def set_memory_high(self, unit: str, limit_bytes: int | None) -> None: ...


class SystemdMemoryHigh:
    def __init__(
        self,
        units: UnitMemorySetter,
        unit: str,
        clock: Callable[[], float] = time.monotonic,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.units = units
        self.unit = unit
        self.applied: MemoryLimit | None = None  # what systemd last accepted from us
        self.failures = 0
        self._clock = clock
        self._retry_seconds = retry_seconds
        self._failed: tuple[MemoryLimit, float] | None = None  # the value and when

    def ensure(self, limit: MemoryLimit) -> None:
        """Tell systemd ``limit`` unless it has it, or it failed a moment ago."""
        if limit == self.applied:
            return
        if self._failed is not None:
            value, at = self._failed
            if value == limit and self._clock() - at < self._retry_seconds:
                return
        self.apply(limit)

    def reassert(self, limit: MemoryLimit) -> None:
        """Tell systemd ``limit`` again although it took it before: memory.high was found
        changed, maybe through systemd, which then stores the other value (a failure a
        moment ago still waits its retry)."""
        self.applied = None
        self.ensure(limit)

    def apply(self, limit: MemoryLimit) -> bool:
        """Tell systemd ``limit`` now; False (logged, counted) when it failed."""
        try:
            self.units.set_memory_high(self.unit, limit.bytes)
        except (OSError, DBusError, DBusWireError) as exc:
            self.failures += 1
            if self._failed is None:
                log_event(
                    log,
                    logging.WARNING,
                    "systemd did not take MemoryHigh; only the cgroupfs value holds",
                    unit=self.unit,
                    memory_high=str(limit),
                    error=str(exc),
                )
            self._failed = (limit, self._clock())
            self.applied = None
            return False
        if self._failed is not None:
            log_event(log, logging.INFO, "systemd takes MemoryHigh again", unit=self.unit)
        self._failed = None
        self.applied = limit
        log_event(log, logging.DEBUG, "systemd MemoryHigh set", unit=self.unit, value=str(limit))
        return True


def systemd_memory_high(
    mode: SystemdDBus,
    location: KubepodsLocation,
    socket: Path,
) -> SystemdMemoryHigh | None:
    """The systemd side for this node, or None: the cgroupfs driver has no unit, and
    ``auto`` leaves it off when the socket is not there."""
    if mode is SystemdDBus.OFF or location.driver is not CgroupDriver.SYSTEMD:
        return None
    if mode is SystemdDBus.AUTO and not socket.exists():
        log_event(
            log,
            logging.WARNING,
            "no D-Bus socket: kubepods memory.high is not told to systemd, which may undo it",
            socket=str(socket),
        )
        return None
    return SystemdMemoryHigh(SystemdUnits(socket, bus_of_socket(socket)), location.path.name)


def bus_of_socket(socket: Path) -> BusKind:
    """systemd's own private socket speaks D-Bus without a bus daemon; any other path is
    taken for a bus daemon's."""
    return BusKind.SYSTEMD_PRIVATE if socket.name == "private" else BusKind.SYSTEM_BUS
