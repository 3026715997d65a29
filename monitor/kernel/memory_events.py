"""``memory.events``: how often the cgroup hit its limits (the event monitor diffs these).

Format (Documentation/admin-guide/cgroup-v2.rst)::

    low 0
    high 12
    max 0
    oom 0
    oom_kill 0
    oom_group_kill 0

Rules: every line is ``key u64``; ``low high max oom oom_kill`` must be present
(kernels since 4.19 write all five); other keys (``oom_group_kill`` since 5.19,
future ones) are kept as they are. Missing keys, junk lines, non-UTF-8 text,
negative numbers and values above 2**64-1 raise :class:`MemoryEventsParseError`;
nothing is ever read as a silent zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from oomguard.monitor.kernel.parse_error import ParseError, parse_flat_keyed

REQUIRED_KEYS = ("low", "high", "max", "oom", "oom_kill")


class MemoryEventsParseError(ParseError):
    """memory.events content is not what the kernel writes."""


@dataclass(frozen=True)
class MemoryEvents:
    """All counters of one read, by key, in file order (known and unknown keys alike)."""

    counters: Mapping[str, int] = field(hash=False)

    def __post_init__(self) -> None:
        missing = [key for key in REQUIRED_KEYS if key not in self.counters]
        if missing:
            raise ValueError(f"memory.events counters lack: {' '.join(missing)}")
        object.__setattr__(self, "counters", MappingProxyType(dict(self.counters)))

    @property
    def low(self) -> int:
        return self.counters["low"]

    @property
    def high(self) -> int:
        """Times usage went over memory.high and the cgroup was throttled."""
        return self.counters["high"]

    @property
    def max(self) -> int:
        """Times usage was about to go over memory.max (reclaim forced)."""
        return self.counters["max"]

    @property
    def oom(self) -> int:
        return self.counters["oom"]

    @property
    def oom_kill(self) -> int:
        """Processes the kernel OOM killer killed in this cgroup (our goal: stays 0)."""
        return self.counters["oom_kill"]


def parse_memory_events(data: bytes, source: str = "memory.events") -> MemoryEvents:
    """Parse the bytes of a memory.events (or memory.events.local) file."""
    counters = parse_flat_keyed(data, source, MemoryEventsParseError)
    missing = [key for key in REQUIRED_KEYS if key not in counters]
    if missing:
        raise MemoryEventsParseError(source, f"missing keys: {' '.join(missing)}")
    return MemoryEvents(counters)


def format_memory_events(events: MemoryEvents) -> bytes:
    """The bytes the kernel would write for these counters (for fakes and round-trips)."""
    return "".join(f"{key} {value}\n" for key, value in events.counters.items()).encode()


def counters_rose(old: MemoryEvents, new: MemoryEvents, keys: tuple[str, ...]) -> dict[str, int]:
    """How much each of ``keys`` rose from ``old`` to ``new``: ``{key: delta}``, rises only.

    Notifications coalesce, so a monitor must compare reads, never count wake-ups.
    A counter that went *down* did not rise (that only happens when the cgroup was
    replaced; the caller takes ``new`` as its next baseline). Keys absent from either
    read are ignored.
    """
    deltas: dict[str, int] = {}
    for key in keys:
        before = old.counters.get(key)
        after = new.counters.get(key)
        if before is not None and after is not None and after > before:
            deltas[key] = after - before
    return deltas
