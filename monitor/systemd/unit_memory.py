"""Set a systemd unit's ``MemoryHigh=`` at runtime, so systemd itself keeps the value.

``SetUnitProperties(name, runtime=true, [("MemoryHigh", <t bytes>)])`` on the manager, as
``systemctl set-property --runtime kubepods.slice MemoryHigh=...`` does. systemd writes the
unit's cgroup ``memory.high`` from it and keeps writing that value whenever it re-applies
the unit (a ``daemon-reload``, or the kubelet updating the slice), so a value written only to
cgroupfs would be undone. ``infinity`` (no limit) is the largest uint64.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from oomguard.monitor.systemd.dbus_connection import DEFAULT_TIMEOUT, DBusConnection
from oomguard.monitor.systemd.dbus_values import (
    Variant,
)

SYSTEMD_NAME = "org.freedesktop.systemd1"
SYSTEMD_PATH = "/org/freedesktop/systemd1"
MANAGER_INTERFACE = "org.freedesktop.systemd1.Manager"
INFINITY = 2**64 - 1  # systemd's "infinity" for MemoryHigh=

SYSTEM_BUS_SOCKET = Path("/run/dbus/system_bus_socket")
PRIVATE_SOCKET = Path("/run/systemd/private")  # systemd itself, no bus daemon; root only


class BusKind(Enum):
    """Who listens on the socket: the system bus daemon (which routes to systemd and wants
    ``Hello`` first) or systemd itself on its private socket."""

    SYSTEM_BUS = "system-bus"
    SYSTEMD_PRIVATE = "systemd-private"


def memory_high_property(limit_bytes: int | None) -> tuple[str, Variant]:
    """``("MemoryHigh", t)``; None (the kernel's ``max``) is systemd's ``infinity``."""
    value = INFINITY if limit_bytes is None else limit_bytes
    if not 0 <= value <= INFINITY:
        raise ValueError(f"MemoryHigh must be a uint64, got {value}")
    return ("MemoryHigh", Variant("t", value))


@dataclass(frozen=True)
class SystemdUnits:
    """The manager, reached through ``socket``; one short connection per call (the agent
    calls it only when the value changes)."""

    socket: Path = SYSTEM_BUS_SOCKET
    bus: BusKind = BusKind.SYSTEM_BUS
    timeout: float = DEFAULT_TIMEOUT

    def set_memory_high(self, unit: str, limit_bytes: int | None) -> None:
        """Raises ``DBusError``, ``DBusWireError`` or ``OSError`` when it did not happen."""
        hello = self.bus is BusKind.SYSTEM_BUS
        with DBusConnection.open(self.socket, hello=hello, timeout=self.timeout) as connection:
            connection.call(
                SYSTEMD_PATH,
                MANAGER_INTERFACE,
                "SetUnitProperties",
                "sba(sv)",
                (unit, True, [memory_high_property(limit_bytes)]),
                destination=SYSTEMD_NAME if hello else None,
            )
