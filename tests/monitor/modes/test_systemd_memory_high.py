"""The systemd side's retry rule, against a recording stand-in for the D-Bus client (the
client itself is tested on real sockets in tests/monitor/systemd)."""

from monitor_fakes import Clock

from oomguard.monitor.kernel.memory_limit import MemoryLimit
from oomguard.monitor.modes.systemd_memory_high import SystemdMemoryHigh, bus_of_socket
from oomguard.monitor.systemd.dbus_connection import DBusError
from oomguard.monitor.systemd.unit_memory import PRIVATE_SOCKET, SYSTEM_BUS_SOCKET, BusKind


class Units:
    def __init__(self):
        self.calls = []
        self.fail = False

    def set_memory_high(self, unit, limit_bytes):
        self.calls.append((unit, limit_bytes))
        if self.fail:
            raise DBusError("refused", "org.freedesktop.DBus.Error.AccessDenied")


def test_failures_are_retried_after_the_interval_or_for_a_new_value():
    units, clock = Units(), Clock(0.0)
    systemd = SystemdMemoryHigh(units, "kubepods.slice", clock, retry_seconds=30)
    units.fail = True
    systemd.ensure(MemoryLimit(1))
    clock.now = 29.0
    systemd.ensure(MemoryLimit(1))  # too soon
    assert len(units.calls) == 1
    systemd.ensure(MemoryLimit(2))  # a new value is tried at once
    assert len(units.calls) == 2
    clock.now = 60.0
    units.fail = False
    systemd.ensure(MemoryLimit(2))
    systemd.ensure(MemoryLimit(2))  # systemd has it
    assert [limit for _, limit in units.calls] == [1, 2, 2]
    assert systemd.failures == 2
    assert systemd.applied == MemoryLimit(2)


def test_apply_always_calls_and_max_is_none():
    units = Units()
    systemd = SystemdMemoryHigh(units, "kubepods.slice", Clock(0.0))
    assert systemd.apply(MemoryLimit(None))
    assert systemd.apply(MemoryLimit(None))
    assert units.calls == [("kubepods.slice", None)] * 2


def test_reassert_calls_although_systemd_took_the_value_but_keeps_the_retry_rule():
    units, clock = Units(), Clock(0.0)
    systemd = SystemdMemoryHigh(units, "kubepods.slice", clock, retry_seconds=30)
    systemd.ensure(MemoryLimit(1))
    systemd.reassert(MemoryLimit(1))  # found changed, maybe through systemd: tell it again
    assert [limit for _, limit in units.calls] == [1, 1]
    assert systemd.applied == MemoryLimit(1)
    units.fail = True
    systemd.reassert(MemoryLimit(1))
    clock.now = 10.0
    systemd.reassert(MemoryLimit(1))  # failed a moment ago: waits its retry
    assert len(units.calls) == 3


def test_bus_of_socket():
    assert bus_of_socket(SYSTEM_BUS_SOCKET) is BusKind.SYSTEM_BUS
    assert bus_of_socket(PRIVATE_SOCKET) is BusKind.SYSTEMD_PRIVATE
