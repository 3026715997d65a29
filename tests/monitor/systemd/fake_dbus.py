"""A D-Bus peer on a real unix socket in a temp dir, for tests of the client: it does the
server's side of SASL EXTERNAL, answers ``Hello`` when it plays a bus daemon, records every
method call and answers it with what ``answer`` returns (a return with no body by default).
One thread, one connection at a time; it records a call before it answers, so a client that
has its reply can look at ``calls`` without waiting."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from oomguard.monitor.systemd.dbus_wire import (
    HeaderField,
    Message,
    MessageType,
    decode_message,
    encode_message,
    message_length,
)

Answer = Callable[[Message], Message | None]


def method_return(call: Message, signature: str = "", body: tuple = ()) -> Message:
    return Message(
        MessageType.METHOD_RETURN,
        1000 + call.serial,
        {HeaderField.REPLY_SERIAL: call.serial},
        signature,
        body,
    )


def error_reply(call: Message, name: str, text: str) -> Message:
    fields = {HeaderField.REPLY_SERIAL: call.serial, HeaderField.ERROR_NAME: name}
    return Message(MessageType.ERROR, 1000 + call.serial, fields, "s", (text,))


class FakeDBusPeer:
    def __init__(
        self,
        path: Path,
        bus: bool,
        answer: Answer | None = None,
        auth: bytes = b"OK 0123456789abcdef0123456789abcdef\r\n",
        before_reply: list[Message] | None = None,
    ) -> None:
        self.path = path
        self.bus = bus  # a bus daemon: Hello first
        self.answer = answer or (lambda call: method_return(call))
        self.auth = auth
        self.before_reply = before_reply or []  # sent ahead of each reply (signals...)
        self.auth_lines: list[bytes] = []
        self.calls: list[Message] = []
        self.connections = 0
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(4)
        self._closing = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closing = True
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as wake:
            wake.connect(str(self.path))
        self._thread.join(30)
        self._listener.close()

    def _serve(self) -> None:
        while True:
            conn, _ = self._listener.accept()
            if self._closing:
                conn.close()
                return
            self.connections += 1
            with conn, contextlib.suppress(OSError, ConnectionError):
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        buffer = b""

        def line() -> bytes:
            nonlocal buffer
            while b"\r\n" not in buffer:
                chunk = conn.recv(4096)
                if not chunk:
                    raise ConnectionError("client went away")
                buffer += chunk
            first, _, buffer = buffer.partition(b"\r\n")
            return first

        self.auth_lines.append(line())
        conn.sendall(self.auth)
        if not self.auth.startswith(b"OK"):
            return
        self.auth_lines.append(line())  # BEGIN
        while True:
            while (length := message_length(buffer)) is None or len(buffer) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            call, buffer = decode_message(buffer[:length]), buffer[length:]
            if self.bus and call.fields.get(HeaderField.MEMBER) == "Hello":
                conn.sendall(encode_message(method_return(call, "s", (":1.42",))))
                continue
            self.calls.append(call)
            reply = self.answer(call)
            if reply is None:
                return  # hang up without answering
            for message in self.before_reply:
                conn.sendall(encode_message(message))
            conn.sendall(encode_message(reply))
