"""One D-Bus connection over a unix socket: authenticate (SASL ``EXTERNAL``), say ``Hello``
to a bus daemon, call methods and wait for their replies. The thin adapter around
``dbus_wire``; every wait is bounded by ``timeout``.

A bus daemon (``/run/dbus/system_bus_socket``) wants ``Hello`` before anything else; a peer
that speaks D-Bus without a daemon (systemd's ``/run/systemd/private``) has no such method.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from oomguard.monitor.systemd.dbus_values import (
    DBusWireError,
)
from oomguard.monitor.systemd.dbus_wire import (
    BEGIN,
    Message,
    MessageType,
    auth_external,
    auth_reply,
    decode_message,
    encode_message,
    message_length,
    method_call,
)

BUS_NAME = "org.freedesktop.DBus"
BUS_PATH = "/org/freedesktop/DBus"
DEFAULT_TIMEOUT = 2.0


class DBusError(Exception):
    """A call failed: the peer answered with an error, or the connection broke."""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name  # the D-Bus error name, when the peer sent one


class DBusConnection:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""
        self._serial = 0
        self.unique_name: str | None = None

    @classmethod
    def open(
        cls, path: Path, hello: bool = True, timeout: float = DEFAULT_TIMEOUT
    ) -> DBusConnection:
        """Connect to ``path``, authenticate as our own uid, and ``Hello`` when ``hello``."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            connection = cls(sock)
            connection._authenticate()
            if hello:
                (name,) = connection.call(BUS_PATH, BUS_NAME, "Hello", destination=BUS_NAME)
                connection.unique_name = str(name)
        except (OSError, DBusWireError, DBusError, ValueError):
            sock.close()
            raise
        return connection

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> DBusConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _authenticate(self) -> None:
        self._sock.sendall(auth_external(os.geteuid()))
        auth_reply(self._read_line())
        self._sock.sendall(BEGIN)

    def _read_line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            self._receive()
            if len(self._buffer) > 4096:
                raise DBusWireError("authentication line longer than 4 KiB")
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def _receive(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise DBusError("the peer closed the connection")
        self._buffer += chunk

    def next_serial(self) -> int:
        self._serial += 1
        return self._serial

    def send(self, message: Message) -> None:
        self._sock.sendall(encode_message(message))

    def receive(self) -> Message:
        """The next whole message from the peer."""
        while (length := message_length(self._buffer)) is None or len(self._buffer) < length:
            self._receive()
        data, self._buffer = self._buffer[:length], self._buffer[length:]
        return decode_message(data)

    def call(
        self,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: tuple[Any, ...] = (),
        destination: str | None = None,
    ) -> tuple[Any, ...]:
        """Call a method and return its reply's body; :class:`DBusError` when the peer
        answers with an error. Messages that are not the reply (signals such as
        ``NameAcquired``) are read and dropped."""
        serial = self.next_serial()
        self.send(method_call(serial, path, interface, member, signature, body, destination))
        while True:
            reply = self.receive()
            if reply.reply_serial != serial:
                continue
            if reply.type is MessageType.ERROR:
                text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
                raise DBusError(f"{member}: {reply.error_name}: {text}", reply.error_name)
            if reply.type is MessageType.METHOD_RETURN:
                return reply.body
