"""The client against a real bus: Debian's dbus-daemon, started privately on a socket in a
temp dir (no service activation). The daemon checks every message it routes, so a call it
answers or passes on proves the bytes are D-Bus. A second connection plays systemd: it owns
``org.freedesktop.systemd1`` and answers ``SetUnitProperties`` as systemd would.

scripts/install-debs installs dbus-daemon; without it these tests fail, they never skip."""

import shutil
import subprocess
import threading

import pytest

from oomguard.monitor.systemd.dbus_connection import BUS_NAME, BUS_PATH, DBusConnection, DBusError
from oomguard.monitor.systemd.dbus_values import (
    Variant,
)
from oomguard.monitor.systemd.dbus_wire import (
    HeaderField,
    Message,
    MessageType,
)
from oomguard.monitor.systemd.unit_memory import (
    INFINITY,
    MANAGER_INTERFACE,
    SYSTEMD_NAME,
    BusKind,
    SystemdUnits,
)

CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={path}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@pytest.fixture
def bus(tmp_path):
    daemon = shutil.which("dbus-daemon")
    assert daemon, "dbus-daemon missing: scripts/install-debs installs Debian's dbus-daemon"
    socket = tmp_path / "bus"
    config = tmp_path / "bus.conf"
    config.write_text(CONFIG.format(path=socket))
    process = subprocess.Popen(
        [daemon, f"--config-file={config}", "--nofork", "--nosyslog", "--print-address"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        address = process.stdout.readline()  # printed once it listens
        assert address.startswith(f"unix:path={socket}"), address
        yield socket
    finally:
        process.terminate()
        process.wait(10)


def test_hello_and_get_id_on_a_real_bus(bus):
    with DBusConnection.open(bus) as connection:
        assert connection.unique_name is not None
        assert connection.unique_name.startswith(":")
        (bus_id,) = connection.call(BUS_PATH, BUS_NAME, "GetId", destination=BUS_NAME)
        assert len(bus_id) == 32
        int(bus_id, 16)
        (names,) = connection.call(BUS_PATH, BUS_NAME, "ListNames", destination=BUS_NAME)
        assert connection.unique_name in names


def test_the_daemon_error_for_a_name_nobody_owns(bus):
    with pytest.raises(DBusError) as caught:
        SystemdUnits(bus, BusKind.SYSTEM_BUS).set_memory_high("kubepods.slice", 1)
    assert caught.value.name == "org.freedesktop.DBus.Error.ServiceUnknown"


class FakeSystemd:
    """A connection on the bus that owns systemd's name and answers its manager's calls."""

    def __init__(self, bus):
        self.connection = DBusConnection.open(bus, timeout=10)
        (owned,) = self.connection.call(
            BUS_PATH, BUS_NAME, "RequestName", "su", (SYSTEMD_NAME, 0), destination=BUS_NAME
        )
        assert owned == 1  # DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
        self.calls: list[Message] = []
        self.thread = threading.Thread(target=self._answer_one, daemon=True)
        self.thread.start()

    def _answer_one(self):
        while True:
            message = self.connection.receive()
            if message.type is MessageType.METHOD_CALL:
                break
        self.calls.append(message)
        reply = Message(
            MessageType.METHOD_RETURN,
            self.connection.next_serial(),
            {
                HeaderField.REPLY_SERIAL: message.serial,
                HeaderField.DESTINATION: message.fields[HeaderField.SENDER],
            },
        )
        self.connection.send(reply)


def test_set_unit_properties_reaches_systemd_through_a_real_bus(bus):
    systemd = FakeSystemd(bus)
    try:
        SystemdUnits(bus, BusKind.SYSTEM_BUS).set_memory_high("kubepods.slice", None)
        systemd.thread.join(10)
        (call,) = systemd.calls
        assert call.fields[HeaderField.MEMBER] == "SetUnitProperties"
        assert call.fields[HeaderField.INTERFACE] == MANAGER_INTERFACE
        assert call.fields[HeaderField.SENDER].startswith(":")  # stamped by the daemon
        assert call.signature == "sba(sv)"
        assert call.body == ("kubepods.slice", True, [("MemoryHigh", Variant("t", INFINITY))])
    finally:
        systemd.connection.close()
