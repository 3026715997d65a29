"""``/proc/vmstat``: machine-wide memory event counters, one ``key u64`` per line.

Only ``oom_kill`` is used: every process the kernel's OOM killer killed on the machine since
boot (since 4.13), whatever the OOM domain was: a machine-wide OOM and a cgroup hitting its
own ``memory.max`` both count (``__oom_kill_process`` counts each kill once here and once in
the victim's ``memory.events``). It is not namespaced: a container reads the host's values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from oomguard.monitor.kernel.parse_error import ParseError, parse_flat_keyed, require_key

VMSTAT = "/proc/vmstat"


class VmstatParseError(ParseError):
    """/proc/vmstat content is not what the kernel writes, or a needed key is absent."""


@dataclass(frozen=True)
class Vmstat:
    """All counters of one read, by key."""

    counters: Mapping[str, int] = field(hash=False)
    source: str = VMSTAT

    def __post_init__(self) -> None:
        object.__setattr__(self, "counters", MappingProxyType(dict(self.counters)))

    @property
    def oom_kill(self) -> int:
        """OOM kills on the machine since boot (global and cgroup OOMs alike)."""
        return require_key(self.counters, "oom_kill", self.source, VmstatParseError)


def parse_vmstat(data: bytes, source: str = VMSTAT) -> Vmstat:
    """Parse /proc/vmstat; keys stay as the kernel names them."""
    return Vmstat(parse_flat_keyed(data, source, VmstatParseError), source)
