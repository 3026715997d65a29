"""``memory.high`` / ``memory.max`` (and ``memory.low``/``min``): bytes or ``max``.

The kernel prints either ``max`` (no limit) or a u64 byte count; it accepts the same
when written (plus K/M/G suffixes, which we never write so reads and writes agree).
"""

from __future__ import annotations

from dataclasses import dataclass

from oomguard.monitor.kernel.parse_error import ParseError, decode_lines, parse_u64, split_fields


class MemoryLimitParseError(ParseError):
    """A memory limit file holds neither ``max`` nor a byte count."""


@dataclass(frozen=True)
class MemoryLimit:
    """A limit in bytes; ``bytes is None`` means ``max`` (unlimited)."""

    bytes: int | None

    @property
    def unlimited(self) -> bool:
        return self.bytes is None

    def __str__(self) -> str:
        return "max" if self.bytes is None else str(self.bytes)


UNLIMITED = MemoryLimit(None)


def parse_memory_limit(data: bytes, source: str = "memory.high") -> MemoryLimit:
    """Parse a memory limit file: exactly one line, ``max`` or a u64."""
    lines = decode_lines(data, source, MemoryLimitParseError)
    if len(lines) != 1:
        raise MemoryLimitParseError(source, f"expected one line, got {len(lines)}")
    number, line = lines[0]
    fields = split_fields(line)
    if len(fields) != 1:
        raise MemoryLimitParseError(source, f"expected 'max' or bytes, got {line[:60]!r}", number)
    if fields[0] == "max":
        return UNLIMITED
    return MemoryLimit(parse_u64(fields[0], source, number, MemoryLimitParseError, "limit"))


def format_memory_limit(limit: MemoryLimit) -> bytes:
    """The bytes to write to (or that the kernel shows in) a limit file."""
    return f"{limit}\n".encode()
