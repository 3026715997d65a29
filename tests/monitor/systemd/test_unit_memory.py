"""The systemd client against a fake D-Bus peer on a real unix socket: the bytes it sends
are decoded on the other side and the call recorded."""

import os

import pytest
from fake_dbus import FakeDBusPeer, error_reply, method_return

from oomguard.monitor.systemd.dbus_connection import DBusConnection, DBusError
from oomguard.monitor.systemd.dbus_values import (
    Variant,
)
from oomguard.monitor.systemd.dbus_wire import (
    AuthRejected,
    HeaderField,
    Message,
    MessageType,
)
from oomguard.monitor.systemd.unit_memory import (
    INFINITY,
    BusKind,
    SystemdUnits,
    memory_high_property,
)


@pytest.fixture
def peer(tmp_path):
    servers = []

    def start(**kwargs):
        server = FakeDBusPeer(tmp_path / f"bus{len(servers)}", **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_set_memory_high_through_the_system_bus(peer):
    bus = peer(bus=True)
    SystemdUnits(bus.path, BusKind.SYSTEM_BUS).set_memory_high("kubepods.slice", 936 * 2**20)
    uid_hex = str(os.geteuid()).encode().hex().encode()
    assert bus.auth_lines == [b"\0AUTH EXTERNAL " + uid_hex, b"BEGIN"]
    (call,) = bus.calls
    assert call.type is MessageType.METHOD_CALL
    assert call.fields == {
        HeaderField.PATH: "/org/freedesktop/systemd1",
        HeaderField.INTERFACE: "org.freedesktop.systemd1.Manager",
        HeaderField.MEMBER: "SetUnitProperties",
        HeaderField.DESTINATION: "org.freedesktop.systemd1",
    }
    assert call.signature == "sba(sv)"
    assert call.body == ("kubepods.slice", True, [("MemoryHigh", Variant("t", 936 * 2**20))])


def test_systemd_private_socket_gets_no_hello_and_no_destination(peer):
    private = peer(bus=False)
    SystemdUnits(private.path, BusKind.SYSTEMD_PRIVATE).set_memory_high("kubepods.slice", None)
    (call,) = private.calls  # a Hello would have been recorded here
    assert HeaderField.DESTINATION not in call.fields
    assert call.body[2] == [("MemoryHigh", Variant("t", INFINITY))]


def test_an_error_reply_raises_with_its_name(peer):
    bus = peer(
        bus=True,
        answer=lambda call: error_reply(
            call, "org.freedesktop.DBus.Error.AccessDenied", "no polkit for you"
        ),
    )
    with pytest.raises(DBusError) as caught:
        SystemdUnits(bus.path).set_memory_high("kubepods.slice", 1)
    assert caught.value.name == "org.freedesktop.DBus.Error.AccessDenied"
    assert "no polkit for you" in str(caught.value)


def test_messages_that_are_not_the_reply_are_skipped(peer):
    signal = Message(
        MessageType.SIGNAL,
        99,
        {
            HeaderField.PATH: "/org/freedesktop/DBus",
            HeaderField.INTERFACE: "org.freedesktop.DBus",
            HeaderField.MEMBER: "NameAcquired",
        },
        "s",
        (":1.42",),
    )
    other = method_return(Message(MessageType.METHOD_CALL, 77, {}), "s", ("not ours",))
    bus = peer(bus=True, before_reply=[signal, other], answer=lambda c: method_return(c, "u", (5,)))
    with DBusConnection.open(bus.path) as connection:
        assert connection.unique_name == ":1.42"
        assert connection.call("/a", "org.example.I", "M") == (5,)


def test_a_peer_that_hangs_up_is_an_error(peer):
    bus = peer(bus=True, answer=lambda call: None)
    with pytest.raises(DBusError, match="closed"):
        SystemdUnits(bus.path).set_memory_high("kubepods.slice", 1)


def test_refused_authentication(peer):
    bus = peer(bus=True, auth=b"REJECTED EXTERNAL\r\n")
    with pytest.raises(AuthRejected):
        SystemdUnits(bus.path).set_memory_high("kubepods.slice", 1)
    assert bus.calls == []


def test_no_socket_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        SystemdUnits(tmp_path / "absent").set_memory_high("kubepods.slice", 1)


def test_memory_high_property():
    assert memory_high_property(5) == ("MemoryHigh", Variant("t", 5))
    assert memory_high_property(None) == ("MemoryHigh", Variant("t", 2**64 - 1))
    with pytest.raises(ValueError):
        memory_high_property(-1)
