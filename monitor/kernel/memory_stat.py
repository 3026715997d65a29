"""``memory.stat``: the cgroup's memory by kind, and the working set derived from it.

Every line is ``key u64`` (bytes for sizes, counts for events such as ``pgfault``);
no key is required by the parser because the set differs between kernel versions;
:meth:`MemoryStat.require` raises a clear error when a caller needs one that is absent.

Working set: ``memory.current - inactive_file``, the figure the kubelet (via cAdvisor)
evicts on and Kubernetes reports as ``container_memory_working_set_bytes``. Only
*inactive* file pages count as reclaimable: they are clean-or-writeback cache the
kernel drops first. ``active_file`` was touched twice recently; reclaiming it costs
refaults and the kernel demotes it only under sustained pressure, so counting it as
free would let usage look lower than it is and make the guard act late. Using the
same figure as the kubelet keeps our decisions and its evictions consistent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from oomguard.monitor.kernel.parse_error import ParseError, parse_flat_keyed, require_key


class MemoryStatParseError(ParseError):
    """memory.stat content is not what the kernel writes, or a needed key is absent."""


@dataclass(frozen=True)
class MemoryStat:
    """All values of one read of memory.stat, by key, in file order."""

    values: Mapping[str, int] = field(hash=False)
    source: str = "memory.stat"

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    def require(self, key: str) -> int:
        """The value of ``key``; a :class:`MemoryStatParseError` when this kernel lacks it."""
        return require_key(self.values, key, self.source, MemoryStatParseError)

    @property
    def reclaimable_file_bytes(self) -> int:
        """Page cache the kernel reclaims first: ``inactive_file`` (see module docstring)."""
        return self.require("inactive_file")


def parse_memory_stat(data: bytes, source: str = "memory.stat") -> MemoryStat:
    """Parse the bytes of a memory.stat file."""
    return MemoryStat(parse_flat_keyed(data, source, MemoryStatParseError), source)


def format_memory_stat(stat: MemoryStat) -> bytes:
    """The bytes the kernel would write for these values."""
    return "".join(f"{key} {value}\n" for key, value in stat.values.items()).encode()


def working_set_bytes(current: int, stat: MemoryStat) -> int:
    """``memory.current - inactive_file``, never below 0 (the two files are read at
    slightly different moments, so the difference can briefly be negative)."""
    return max(0, current - stat.reclaimable_file_bytes)
