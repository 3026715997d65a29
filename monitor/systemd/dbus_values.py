"""D-Bus values by signature: the marshalling half of the wire format oomguard speaks. Pure:
bytes in, bytes out.

Little-endian only when writing (``l``); both byte orders when reading. Values map to Python
as: ``y n q i u x t`` int, ``b`` bool, ``d`` float, ``s o g`` str, ``a`` list (of tuples for
``a{..}``), ``(..)`` tuple, ``v`` :class:`Variant`. Unix fds (``h``) are not supported.
Alignment is counted from the start of the message, as the specification says; a body starts
on an 8-byte boundary, so counting from the body's start gives the same padding.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any


class DBusWireError(ValueError):
    """Bytes or values that are not valid D-Bus for the given signature."""


@dataclass(frozen=True)
class Variant:
    """A ``v`` value: one complete type and its value."""

    signature: str
    value: Any


_INTEGERS = {  # code: (struct format, size, lowest, highest)
    "y": ("B", 1, 0, 2**8 - 1),
    "n": ("h", 2, -(2**15), 2**15 - 1),
    "q": ("H", 2, 0, 2**16 - 1),
    "i": ("i", 4, -(2**31), 2**31 - 1),
    "u": ("I", 4, 0, 2**32 - 1),
    "x": ("q", 8, -(2**63), 2**63 - 1),
    "t": ("Q", 8, 0, 2**64 - 1),
}
_ALIGN = {"y": 1, "b": 4, "n": 2, "q": 2, "i": 4, "u": 4, "x": 8, "t": 8, "d": 8}
_ALIGN |= {"s": 4, "o": 4, "g": 1, "a": 4, "(": 8, "{": 8, "v": 1}
_BASIC = set(_INTEGERS) | {"b", "d", "s", "o", "g"}
MAX_DEPTH = 32


def split_types(signature: str) -> list[str]:
    """``"sba(sv)"`` -> ``["s", "b", "a(sv)"]``; :class:`DBusWireError` for anything that is
    not a sequence of complete types."""
    types, i = [], 0
    while i < len(signature):
        end = _type_end(signature, i, 0)
        types.append(signature[i:end])
        i = end
    return types


def _type_end(sig: str, i: int, depth: int) -> int:
    if depth > MAX_DEPTH:
        raise DBusWireError(f"signature {sig!r} nests too deep")
    if i >= len(sig):
        raise DBusWireError(f"signature {sig!r} ends inside a type")
    code = sig[i]
    if code in _BASIC or code == "v":
        return i + 1
    if code == "a":
        if i + 1 < len(sig) and sig[i + 1] == "{":
            key = i + 2
            if key >= len(sig) or sig[key] not in _BASIC:
                raise DBusWireError(f"signature {sig!r}: a dict key must be a basic type")
            end = _type_end(sig, _type_end(sig, key, depth + 1), depth + 1)
            if end >= len(sig) or sig[end] != "}":
                raise DBusWireError(f"signature {sig!r}: a dict entry holds exactly two types")
            return end + 1
        return _type_end(sig, i + 1, depth + 1)
    if code == "(":
        j = i + 1
        if j < len(sig) and sig[j] == ")":
            raise DBusWireError(f"signature {sig!r}: empty struct")
        while j < len(sig) and sig[j] != ")":
            j = _type_end(sig, j, depth + 1)
        if j >= len(sig):
            raise DBusWireError(f"signature {sig!r}: unclosed struct")
        return j + 1
    raise DBusWireError(f"signature {sig!r}: unknown type code {code!r}")


def padding(offset: int, align: int) -> int:
    """The zero bytes that bring ``offset`` to a multiple of ``align``."""
    return -offset % align


class _Writer:
    def __init__(self, start: int = 0) -> None:
        self.buf = bytearray()
        self.start = start  # where buf sits in the message, for alignment

    def align(self, n: int) -> None:
        self.buf += b"\0" * padding(self.start + len(self.buf), n)

    def put(self, fmt: str, value: Any) -> None:
        self.buf += struct.pack("<" + fmt, value)

    def string(self, value: Any, code: str) -> None:
        if not isinstance(value, str):
            raise DBusWireError(f"{code!r} needs a str, got {value!r}")
        data = value.encode()
        if b"\0" in data:
            raise DBusWireError("strings must not contain NUL")
        if code == "g":
            if len(data) > 255:
                raise DBusWireError("a signature is at most 255 bytes")
            split_types(value)
            self.put("B", len(data))
        else:
            if code == "o":
                _check_path(value)
            self.align(4)
            self.put("I", len(data))
        self.buf += data + b"\0"

    def value(self, sig: str, value: Any) -> None:
        code = sig[0]
        if code in _INTEGERS:
            fmt, size, low, high = _INTEGERS[code]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise DBusWireError(f"{code!r} needs an int in [{low}, {high}], got {value!r}")
            self.align(size)
            self.put(fmt, value)
        elif code == "b":
            if not isinstance(value, bool):
                raise DBusWireError(f"'b' needs a bool, got {value!r}")
            self.align(4)
            self.put("I", int(value))
        elif code == "d":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise DBusWireError(f"'d' needs a float, got {value!r}")
            self.align(8)
            self.put("d", float(value))
        elif code in "sog":
            self.string(value, code)
        elif code == "v":
            if not isinstance(value, Variant) or len(split_types(value.signature)) != 1:
                raise DBusWireError(f"'v' needs a Variant of one complete type, got {value!r}")
            self.string(value.signature, "g")
            self.value(value.signature, value.value)
        elif code == "a":
            self._array(sig[1:], value)
        else:  # "(" or "{"
            members = split_types(sig[1:-1])
            if not isinstance(value, tuple) or len(value) != len(members):
                raise DBusWireError(f"{sig!r} needs a tuple of {len(members)}, got {value!r}")
            self.align(8)
            for member, item in zip(members, value, strict=True):
                self.value(member, item)

    def _array(self, element: str, value: Any) -> None:
        if isinstance(value, dict) and element.startswith("{"):
            value = list(value.items())
        if not isinstance(value, (list, tuple)):
            raise DBusWireError(f"'a{element}' needs a list, got {value!r}")
        self.align(4)
        length_at = len(self.buf)
        self.put("I", 0)
        self.align(_ALIGN[element[0]])
        first = len(self.buf)
        for item in value:
            self.value(element, item)
        length = len(self.buf) - first
        if length > 2**26:
            raise DBusWireError("an array is at most 64 MiB")
        struct.pack_into("<I", self.buf, length_at, length)


def _check_path(path: str) -> None:
    ok = path == "/" or (
        path.startswith("/")
        and not path.endswith("/")
        and all(
            part and all(c.isascii() and (c.isalnum() or c == "_") for c in part)
            for part in path[1:].split("/")
        )
    )
    if not ok:
        raise DBusWireError(f"not an object path: {path!r}")


def encode_values(signature: str, values: tuple[Any, ...] | list[Any], start: int = 0) -> bytes:
    """The values of ``signature`` (one per complete type), as if they began ``start`` bytes
    into a message."""
    types = split_types(signature)
    if len(types) != len(values):
        raise DBusWireError(f"{signature!r} takes {len(types)} values, got {len(values)}")
    writer = _Writer(start)
    for sig, value in zip(types, values, strict=True):
        writer.value(sig, value)
    return bytes(writer.buf)


class ValueReader:
    """Reads values off ``data`` from ``start``; ``pos`` says how far it got (a message's
    header is read this way, then checked to end where its body begins)."""

    def __init__(self, data: bytes, order: str, start: int = 0) -> None:
        self.data = data
        self.order = order  # "<" or ">"
        self.pos = start

    def align(self, n: int) -> None:
        gap = padding(self.pos, n)
        if self.data[self.pos : self.pos + gap].strip(b"\0"):
            raise DBusWireError(f"non-zero padding at byte {self.pos}")
        self.need(gap)
        self.pos += gap

    def need(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise DBusWireError(f"truncated: {n} bytes needed at byte {self.pos}")

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        self.need(size)
        (value,) = struct.unpack_from(self.order + fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self, code: str) -> str:
        if code == "g":
            length = self.take("B")
        else:
            self.align(4)
            length = self.take("I")
        self.need(length + 1)
        raw = self.data[self.pos : self.pos + length]
        if self.data[self.pos + length] != 0 or b"\0" in raw:
            raise DBusWireError(f"string at byte {self.pos} is not NUL-terminated")
        self.pos += length + 1
        try:
            text = raw.decode()
        except UnicodeDecodeError as exc:
            raise DBusWireError(f"string at byte {self.pos} is not UTF-8") from exc
        if code == "g":
            split_types(text)
        elif code == "o":
            _check_path(text)
        return text

    def value(self, sig: str, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise DBusWireError("values nest too deep")
        code = sig[0]
        if code in _INTEGERS:
            fmt, size, _, _ = _INTEGERS[code]
            self.align(size)
            return self.take(fmt)
        if code == "b":
            self.align(4)
            raw = self.take("I")
            if raw not in (0, 1):
                raise DBusWireError(f"boolean {raw} is neither 0 nor 1")
            return bool(raw)
        if code == "d":
            self.align(8)
            return self.take("d")
        if code in "sog":
            return self.string(code)
        if code == "v":
            inner = self.string("g")
            if len(split_types(inner)) != 1:
                raise DBusWireError(f"variant signature {inner!r} is not one complete type")
            return Variant(inner, self.value(inner, depth + 1))
        if code == "a":
            element = sig[1:]
            self.align(4)
            length = self.take("I")
            if length > 2**26:
                raise DBusWireError(f"array of {length} bytes is longer than 64 MiB")
            self.align(_ALIGN[element[0]])
            end = self.pos + length
            self.need(length)
            items = []
            while self.pos < end:
                items.append(self.value(element, depth + 1))
            if self.pos != end:
                raise DBusWireError("array elements overrun the array's length")
            return items
        members = split_types(sig[1:-1])
        self.align(8)
        return tuple(self.value(member, depth + 1) for member in members)


def decode_values(signature: str, data: bytes, order: str = "<", start: int = 0) -> tuple[Any, ...]:
    """The values of ``signature`` in ``data[start:]``, all of it."""
    reader = ValueReader(data, order, start)
    values = tuple(reader.value(sig) for sig in split_types(signature))
    if reader.pos != len(data):
        raise DBusWireError(f"{len(data) - reader.pos} bytes left after {signature!r}")
    return values
