"""PSI: ``memory.pressure`` (and /proc/pressure/memory) readings, and trigger specs.

Format (Documentation/accounting/psi.rst)::

    some avg10=0.00 avg60=0.00 avg300=0.00 total=0
    full avg10=0.00 avg60=0.00 avg300=0.00 total=0

``avgN`` are percentages of wall time stalled (0..100, two decimals); ``total`` is
cumulative stall time in microseconds (u64). ``full`` is optional because
/proc/pressure/cpu omits it on older kernels; a ``full`` line without ``some`` is an
error, as are unknown line kinds, missing or repeated fields and out-of-range values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oomguard.monitor.kernel.parse_error import (
    ParseError,
    decode_lines,
    parse_u64,
    split_fields,
)

_AVERAGE = re.compile(r"[0-9]{1,3}\.[0-9]{2}", re.ASCII)
_AVERAGE_KEYS = ("avg10", "avg60", "avg300")

# Kernel bounds for a trigger (kernel/sched/psi.c: psi_trigger_create).
WINDOW_MIN_US = 500_000
WINDOW_MAX_US = 10_000_000


class MemoryPressureParseError(ParseError):
    """A pressure file's content is not what the kernel writes."""


class InvalidPsiTrigger(ValueError):
    """A PSI trigger the kernel would refuse (with EINVAL, which says nothing)."""


@dataclass(frozen=True)
class PressureLine:
    """One ``some``/``full`` line: stall percentages over 10 s, 60 s, 300 s and a total."""

    avg10: float
    avg60: float
    avg300: float
    total_us: int


@dataclass(frozen=True)
class MemoryPressure:
    some: PressureLine
    full: PressureLine | None


@dataclass(frozen=True)
class PsiTrigger:
    """``<some|full> <stall_us> <window_us>``: wake when tasks stalled ``stall_us`` within
    any ``window_us``. Checked here against the kernel's bounds so a bad setting fails
    with a message instead of a bare EINVAL at write time."""

    stall_us: int
    window_us: int
    kind: str = "some"

    def __post_init__(self) -> None:
        if self.kind not in ("some", "full"):
            raise InvalidPsiTrigger(f"PSI trigger kind must be 'some' or 'full', not {self.kind!r}")
        if not WINDOW_MIN_US <= self.window_us <= WINDOW_MAX_US:
            raise InvalidPsiTrigger(
                f"PSI window {self.window_us} us is outside the kernel's "
                f"{WINDOW_MIN_US}..{WINDOW_MAX_US} us (500 ms..10 s)"
            )
        if not 0 < self.stall_us <= self.window_us:
            raise InvalidPsiTrigger(
                f"PSI stall {self.stall_us} us must be above 0 and at most the window "
                f"({self.window_us} us)"
            )

    def encode(self) -> bytes:
        """The bytes to write to the pressure file (NUL-terminated, as psi.rst shows)."""
        return f"{self.kind} {self.stall_us} {self.window_us}\0".encode()


def _parse_average(token: str, source: str, line: int, key: str) -> float:
    if not _AVERAGE.fullmatch(token) or float(token) > 100.0:
        raise MemoryPressureParseError(source, f"{key}={token[:40]!r} is not a 0.00..100.00", line)
    return float(token)


def _parse_line(fields: list[str], source: str, line: int) -> PressureLine:
    pairs: dict[str, str] = {}
    for item in fields:
        key, sep, value = item.partition("=")
        if not sep or key not in (*_AVERAGE_KEYS, "total") or key in pairs:
            raise MemoryPressureParseError(source, f"unexpected field {item[:40]!r}", line)
        pairs[key] = value
    missing = [key for key in (*_AVERAGE_KEYS, "total") if key not in pairs]
    if missing:
        raise MemoryPressureParseError(source, f"missing {' '.join(missing)}", line)
    return PressureLine(
        avg10=_parse_average(pairs["avg10"], source, line, "avg10"),
        avg60=_parse_average(pairs["avg60"], source, line, "avg60"),
        avg300=_parse_average(pairs["avg300"], source, line, "avg300"),
        total_us=parse_u64(pairs["total"], source, line, MemoryPressureParseError, "total"),
    )


def parse_memory_pressure(data: bytes, source: str = "memory.pressure") -> MemoryPressure:
    """Parse a PSI pressure file."""
    lines: dict[str, PressureLine] = {}
    for number, line in decode_lines(data, source, MemoryPressureParseError):
        fields = split_fields(line)
        kind = fields[0] if fields else ""
        if kind not in ("some", "full"):
            raise MemoryPressureParseError(
                source, f"line kind {kind[:40]!r} is not some/full", number
            )
        if kind in lines:
            raise MemoryPressureParseError(source, f"{kind!r} appears twice", number)
        lines[kind] = _parse_line(fields[1:], source, number)
    if "some" not in lines:
        raise MemoryPressureParseError(source, "no 'some' line")
    return MemoryPressure(some=lines["some"], full=lines.get("full"))


def format_memory_pressure(pressure: MemoryPressure) -> bytes:
    """The bytes the kernel would write."""

    def line(kind: str, p: PressureLine) -> str:
        return (
            f"{kind} avg10={p.avg10:.2f} avg60={p.avg60:.2f} avg300={p.avg300:.2f} "
            f"total={p.total_us}\n"
        )

    text = line("some", pressure.some)
    if pressure.full is not None:
        text += line("full", pressure.full)
    return text.encode()
