"""``/proc/meminfo``: host-wide memory, for usage that escapes any cgroup.

Lines look like ``MemAvailable:    1234 kB`` or ``HugePages_Total:       0``. Values
with the ``kB`` unit are returned in bytes (x1024, the kernel's "kB" is KiB); values
without a unit are counts and stay as they are. Keys keep their punctuation
(``Active(anon)``). ``MemTotal`` is required; ``MemAvailable`` (since 3.14) is looked
up with :meth:`Meminfo.require` so its absence is a clear error, not a zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from oomguard.monitor.kernel.parse_error import (
    ParseError,
    decode_lines,
    parse_u64,
    require_key,
    split_fields,
)


class MeminfoParseError(ParseError):
    """/proc/meminfo content is not what the kernel writes, or a needed key is absent."""


@dataclass(frozen=True)
class Meminfo:
    """Values by key: bytes for ``kB`` lines, plain counts otherwise."""

    values: Mapping[str, int] = field(hash=False)
    kib_keys: frozenset[str] = frozenset()  # keys printed with the kB unit
    source: str = "/proc/meminfo"

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    def require(self, key: str) -> int:
        return require_key(self.values, key, self.source, MeminfoParseError)

    @property
    def mem_total(self) -> int:
        return self.require("MemTotal")

    @property
    def mem_available(self) -> int:
        """The kernel's estimate of memory usable without swapping, in bytes."""
        return self.require("MemAvailable")

    @property
    def used_bytes(self) -> int:
        """``MemTotal - MemAvailable``: host usage as the kubelet's memory.available sees it."""
        return max(0, self.mem_total - self.mem_available)


def parse_meminfo(data: bytes, source: str = "/proc/meminfo") -> Meminfo:
    """Parse /proc/meminfo."""
    values: dict[str, int] = {}
    kib_keys: set[str] = set()
    for number, line in decode_lines(data, source, MeminfoParseError):
        key, sep, rest = line.partition(":")
        fields = split_fields(rest)
        if not sep or split_fields(key) != [key] or not key.isprintable():
            raise MeminfoParseError(
                source, f"expected 'Key: value [kB]', got {line[:60]!r}", number
            )
        if len(fields) == 2 and fields[1] == "kB":
            scale = 1024
        elif len(fields) == 1:
            scale = 1
        else:
            raise MeminfoParseError(
                source, f"expected 'Key: value [kB]', got {line[:60]!r}", number
            )
        if key in values:
            raise MeminfoParseError(source, f"key {key!r} appears twice", number)
        values[key] = parse_u64(fields[0], source, number, MeminfoParseError, key) * scale
        if scale == 1024:
            kib_keys.add(key)
    require_key(values, "MemTotal", source, MeminfoParseError)
    return Meminfo(values, frozenset(kib_keys), source)


def format_meminfo(meminfo: Meminfo) -> bytes:
    """The bytes the kernel would write (``kB`` keys must hold multiples of 1024)."""
    lines = []
    for key, value in meminfo.values.items():
        shown = f"{value // 1024} kB" if key in meminfo.kib_keys else str(value)
        lines.append(f"{key}: {shown:>16}\n")
    return "".join(lines).encode()
