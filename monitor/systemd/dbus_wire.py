"""D-Bus messages and the SASL lines of ``EXTERNAL`` authentication: the framing half of the
wire format oomguard speaks (values by signature are ``dbus_values``). Pure: bytes in, bytes
out, no sockets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from oomguard.monitor.systemd.dbus_values import (
    DBusWireError,
    ValueReader,
    Variant,
    decode_values,
    encode_values,
    padding,
)

PROTOCOL_VERSION = 1
MAX_MESSAGE = 2**27  # the specification's limit on a whole message


class MessageType(IntEnum):
    METHOD_CALL = 1
    METHOD_RETURN = 2
    ERROR = 3
    SIGNAL = 4


class HeaderField(IntEnum):
    PATH = 1
    INTERFACE = 2
    MEMBER = 3
    ERROR_NAME = 4
    REPLY_SERIAL = 5
    DESTINATION = 6
    SENDER = 7
    SIGNATURE = 8
    UNIX_FDS = 9


HEADER_FIELD_TYPES = {
    HeaderField.PATH: "o",
    HeaderField.INTERFACE: "s",
    HeaderField.MEMBER: "s",
    HeaderField.ERROR_NAME: "s",
    HeaderField.REPLY_SERIAL: "u",
    HeaderField.DESTINATION: "s",
    HeaderField.SENDER: "s",
    HeaderField.SIGNATURE: "g",
    HeaderField.UNIX_FDS: "u",
}

NO_REPLY_EXPECTED = 0x1


@dataclass(frozen=True)
class Message:
    type: MessageType
    serial: int
    fields: dict[HeaderField, Any] = field(default_factory=dict)
    signature: str = ""
    body: tuple[Any, ...] = ()
    flags: int = 0

    @property
    def reply_serial(self) -> int | None:
        value = self.fields.get(HeaderField.REPLY_SERIAL)
        return value if isinstance(value, int) else None

    @property
    def error_name(self) -> str | None:
        value = self.fields.get(HeaderField.ERROR_NAME)
        return value if isinstance(value, str) else None


def method_call(
    serial: int,
    path: str,
    interface: str,
    member: str,
    signature: str = "",
    body: tuple[Any, ...] = (),
    destination: str | None = None,
) -> Message:
    fields: dict[HeaderField, Any] = {
        HeaderField.PATH: path,
        HeaderField.INTERFACE: interface,
        HeaderField.MEMBER: member,
    }
    if destination is not None:
        fields[HeaderField.DESTINATION] = destination
    return Message(MessageType.METHOD_CALL, serial, fields, signature, body)


_REQUIRED = {
    MessageType.METHOD_CALL: (HeaderField.PATH, HeaderField.MEMBER),
    MessageType.METHOD_RETURN: (HeaderField.REPLY_SERIAL,),
    MessageType.ERROR: (HeaderField.ERROR_NAME, HeaderField.REPLY_SERIAL),
    MessageType.SIGNAL: (HeaderField.PATH, HeaderField.INTERFACE, HeaderField.MEMBER),
}


def encode_message(message: Message) -> bytes:
    if not 1 <= message.serial <= 2**32 - 1:
        raise DBusWireError(f"serial {message.serial} is not in [1, 2^32-1]")
    missing = [f.name for f in _REQUIRED[message.type] if f not in message.fields]
    if missing:
        raise DBusWireError(f"a {message.type.name} needs header fields {missing}")
    body = encode_values(message.signature, message.body)
    fields = dict(message.fields)
    if message.signature:
        fields[HeaderField.SIGNATURE] = message.signature
    header_fields = [
        (int(code), Variant(HEADER_FIELD_TYPES[code], value))
        for code, value in sorted(fields.items())
    ]
    fixed = struct.pack(
        "<cBBBII", b"l", message.type, message.flags, PROTOCOL_VERSION, len(body), message.serial
    )
    header = fixed + encode_values("a(yv)", (header_fields,), start=len(fixed))
    data = header + b"\0" * padding(len(header), 8) + body
    if len(data) > MAX_MESSAGE:
        raise DBusWireError("message longer than 128 MiB")
    return data


def message_length(data: bytes) -> int | None:
    """The whole message's length once its first 16 bytes are in ``data``, else None."""
    if len(data) < 16:
        return None
    order = _byte_order(data[0:1])
    body_length, _, fields_length = struct.unpack_from(order + "III", data, 4)
    header = 16 + int(fields_length)
    total: int = header + padding(header, 8) + body_length
    if total > MAX_MESSAGE:
        raise DBusWireError(f"message of {total} bytes is longer than 128 MiB")
    return total


def _byte_order(flag: bytes) -> str:
    if flag == b"l":
        return "<"
    if flag == b"B":
        return ">"
    raise DBusWireError(f"unknown byte order {flag!r}")


def decode_message(data: bytes) -> Message:
    """Exactly one whole message (:func:`message_length` says how long it is)."""
    total = message_length(data)
    if total is None or total != len(data):
        raise DBusWireError(f"expected one whole message, got {len(data)} bytes")
    order = _byte_order(data[0:1])
    kind, flags, version, body_length, serial = struct.unpack_from(order + "BBBII", data, 1)
    if version != PROTOCOL_VERSION:
        raise DBusWireError(f"protocol version {version}, not 1")
    try:
        message_type = MessageType(kind)
    except ValueError as exc:
        raise DBusWireError(f"unknown message type {kind}") from exc
    if serial == 0:
        raise DBusWireError("serial 0")
    reader = ValueReader(data[: len(data) - body_length], order, 12)
    raw_fields = reader.value("a(yv)")
    reader.align(8)
    if reader.pos != len(data) - body_length:
        raise DBusWireError("header does not end where the body begins")
    fields: dict[HeaderField, Any] = {}
    for code, variant in raw_fields:
        try:
            known = HeaderField(code)
        except ValueError:
            continue  # unknown header fields must be ignored
        if variant.signature != HEADER_FIELD_TYPES[known]:
            raise DBusWireError(f"header field {known.name} has type {variant.signature!r}")
        fields[known] = variant.value
    missing = [f.name for f in _REQUIRED[message_type] if f not in fields]
    if missing:
        raise DBusWireError(f"a {message_type.name} lacks header fields {missing}")
    signature = fields.pop(HeaderField.SIGNATURE, "")
    body_start = len(data) - body_length
    body = decode_values(signature, data[body_start:], order) if body_length or signature else ()
    return Message(message_type, serial, fields, signature, body, flags)


# -- SASL, the text exchange before the first message ------------------------------------


def auth_external(uid: int) -> bytes:
    """The NUL byte every client sends first, then ``AUTH EXTERNAL`` with the uid as the
    hex of its decimal digits (uid 0 -> ``30``)."""
    return b"\0AUTH EXTERNAL " + str(uid).encode().hex().encode() + b"\r\n"


BEGIN = b"BEGIN\r\n"


class AuthRejected(DBusWireError):
    """The server did not accept our authentication."""


def auth_reply(line: bytes) -> str:
    """The server's GUID from its ``OK <guid>`` line; :class:`AuthRejected` otherwise."""
    text = line.rstrip(b"\r\n").decode("ascii", "replace")
    word, _, rest = text.partition(" ")
    if word != "OK":
        raise AuthRejected(f"authentication refused: {text[:200]!r}")
    return rest
