"""D-Bus messages and SASL on bytes: the ``Hello`` libdbus sends byte for byte, replies and
errors round-tripped, and each kind of malformed message refused."""

import struct

import pytest

from oomguard.monitor.systemd.dbus_values import DBusWireError, Variant, encode_values
from oomguard.monitor.systemd.dbus_wire import (
    BEGIN,
    AuthRejected,
    HeaderField,
    Message,
    MessageType,
    auth_external,
    auth_reply,
    decode_message,
    encode_message,
    message_length,
    method_call,
)

# what libdbus sends first on every bus connection (header fields in its order: 1, 3, 2, 6)
LIBDBUS_HELLO = (
    b"l\x01\x00\x01\x00\x00\x00\x00\x01\x00\x00\x00m\x00\x00\x00"
    b"\x01\x01o\x00\x15\x00\x00\x00/org/freedesktop/DBus\x00\x00\x00"
    b"\x03\x01s\x00\x05\x00\x00\x00Hello\x00\x00\x00"
    b"\x02\x01s\x00\x14\x00\x00\x00org.freedesktop.DBus\x00\x00\x00\x00"
    b"\x06\x01s\x00\x14\x00\x00\x00org.freedesktop.DBus\x00\x00\x00\x00"
)
# the same, header fields in ours (by code: 1, 2, 3, 6)
OUR_HELLO = LIBDBUS_HELLO[:48] + LIBDBUS_HELLO[64:96] + LIBDBUS_HELLO[48:64] + LIBDBUS_HELLO[96:]
HELLO = method_call(
    1, "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", destination="org.freedesktop.DBus"
)


def test_libdbus_hello_decodes():
    assert message_length(LIBDBUS_HELLO) == len(LIBDBUS_HELLO) == 128
    assert decode_message(LIBDBUS_HELLO) == HELLO


def test_hello_encodes_byte_for_byte():
    assert encode_message(HELLO) == OUR_HELLO


def test_a_method_call_with_a_body_round_trips():
    call = method_call(
        7,
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
        "SetUnitProperties",
        "sba(sv)",
        ("kubepods.slice", True, [("MemoryHigh", Variant("t", 123))]),
        destination="org.freedesktop.systemd1",
    )
    data = encode_message(call)
    body_length, serial = struct.unpack_from("<II", data, 4)
    assert serial == 7
    assert data[len(data) - body_length :] == encode_values("sba(sv)", call.body)
    assert decode_message(data) == call


def test_replies_and_errors_round_trip():
    reply = Message(MessageType.METHOD_RETURN, 2, {HeaderField.REPLY_SERIAL: 1}, "s", (":1.5",))
    error = Message(
        MessageType.ERROR,
        3,
        {HeaderField.REPLY_SERIAL: 1, HeaderField.ERROR_NAME: "org.example.Failed"},
        "s",
        ("why",),
    )
    for message in (reply, error):
        assert decode_message(encode_message(message)) == message
    assert decode_message(encode_message(error)).error_name == "org.example.Failed"
    assert decode_message(encode_message(reply)).reply_serial == 1


def test_message_length_needs_the_fixed_header():
    assert message_length(OUR_HELLO[:15]) is None
    assert message_length(OUR_HELLO[:16]) == 128


def test_unknown_header_fields_are_ignored():
    data = bytearray(OUR_HELLO)
    data[96] = 0x7F  # the DESTINATION field's code, now unknown
    assert HeaderField.DESTINATION not in decode_message(bytes(data)).fields


@pytest.mark.parametrize(
    ("offset", "value"),
    [
        (0, ord("x")),  # byte order
        (1, 9),  # message type
        (3, 2),  # protocol version
        (8, 0),  # serial 0 (with the other serial bytes already 0)
        (16, 2),  # PATH becomes INTERFACE: a METHOD_CALL without PATH
        (18, ord("s")),  # PATH's variant has the wrong type
        (47, 1),  # padding between header fields
    ],
)
def test_malformed_messages_are_refused(offset, value):
    data = bytearray(OUR_HELLO)
    data[offset] = value
    with pytest.raises(DBusWireError):
        decode_message(bytes(data))


def test_a_message_must_be_whole():
    for cut in (16, 64, 127):
        with pytest.raises(DBusWireError):
            decode_message(OUR_HELLO[:cut])
    with pytest.raises(DBusWireError):
        decode_message(OUR_HELLO + b"\0")


def test_a_message_needs_its_header_fields_and_a_serial():
    with pytest.raises(DBusWireError):
        encode_message(Message(MessageType.ERROR, 1, {HeaderField.REPLY_SERIAL: 1}))
    with pytest.raises(DBusWireError):
        encode_message(Message(MessageType.METHOD_RETURN, 0, {HeaderField.REPLY_SERIAL: 1}))


# -- SASL ------------------------------------------------------------------------------


def test_auth_external_sends_the_uid_as_hex_of_its_digits():
    assert auth_external(0) == b"\0AUTH EXTERNAL 30\r\n"
    assert auth_external(1000) == b"\0AUTH EXTERNAL 31303030\r\n"
    assert BEGIN == b"BEGIN\r\n"


def test_auth_reply():
    assert auth_reply(b"OK 0123abcd\r\n") == "0123abcd"
    for line in (b"REJECTED EXTERNAL\r\n", b"ERROR\r\n", b"OKAY\r\n"):
        with pytest.raises(AuthRejected):
            auth_reply(line)
