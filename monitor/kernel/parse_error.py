"""The one error type kernel-file parsers raise, and the text rules they share.

Kernel interface files are ASCII: one record a line, fields separated by spaces,
counters printed as unsigned 64-bit decimals. Everything here is pure (bytes in,
values out) so each parser can be fuzzed without a kernel.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

U64_MAX = 2**64 - 1
"""Counters and sizes are ``u64`` in the kernel: 0..2**64-1 is valid, anything else is junk."""

_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_FIELD_SEPARATOR = re.compile(r"[ \t]+")


class ParseError(ValueError):
    """Bytes from a kernel file did not match its format.

    The message names the file and, when it applies, the 1-based line, so a log
    line alone says which file was bad and where.
    """

    def __init__(self, source: str, reason: str, line: int | None = None) -> None:
        self.source = source
        self.reason = reason
        self.line = line
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {reason}")


def decode_lines(data: bytes, source: str, error: type[ParseError]) -> list[tuple[int, str]]:
    """Split kernel text into ``(line_number, line)`` pairs, dropping empty lines.

    Only ``\\n`` ends a line (a stray ``\\r`` stays in a field and fails there).
    Text must be UTF-8; the error says on which line it is not.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(source, "not UTF-8 text", line) from None
    return [(number, line) for number, line in enumerate(text.split("\n"), 1) if line]


def split_fields(line: str) -> list[str]:
    """Fields of one line: separated by runs of spaces or tabs, outer blanks ignored."""
    stripped = line.strip(" \t")
    return _FIELD_SEPARATOR.split(stripped) if stripped else []


def parse_u64(token: str, source: str, line: int, error: type[ParseError], what: str) -> int:
    """A kernel ``u64`` printed in decimal: ASCII digits only (no sign, no ``_``, no spaces).

    Negative or larger-than-u64 values mean the file is not what we think it is,
    so they are errors rather than clamped or wrapped.
    """
    if len(token) > 20 or not _DIGITS.fullmatch(token):
        raise error(source, f"{what}: {token[:40]!r} is not an unsigned decimal integer", line)
    value = int(token)
    if value > U64_MAX:
        raise error(source, f"{what}: {token} exceeds the u64 range", line)
    return value


def parse_flat_keyed(data: bytes, source: str, error: type[ParseError]) -> dict[str, int]:
    """A "flat keyed" cgroup file (``key value`` per line, e.g. memory.events, memory.stat).

    Keys are kept in file order; a repeated key is an error (which value would be true?).
    """
    values: dict[str, int] = {}
    for number, line in decode_lines(data, source, error):
        fields = split_fields(line)
        if len(fields) != 2:
            raise error(source, f"expected 'key value', got {line[:60]!r}", number)
        key, token = fields
        if not key.isprintable():
            raise error(source, f"key {key[:40]!r} has unprintable characters", number)
        if key in values:
            raise error(source, f"key {key!r} appears twice", number)
        values[key] = parse_u64(token, source, number, error, key)
    return values


def require_key(values: Mapping[str, int], key: str, source: str, error: type[ParseError]) -> int:
    """The value of a key the caller needs: its absence is the file's error, never a zero
    (the set of keys differs between kernel versions)."""
    try:
        return values[key]
    except KeyError:
        raise error(source, f"no {key!r} entry") from None
