"""What the driver reads about a process and the machine in /proc: CPU time, resident
memory (now and peak), wake-ups (voluntary context switches of every thread), MemAvailable."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable")


def read_kv_meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        out[key] = int(rest.split()[0]) * 1024
    return out


def peak_rss_bytes(pid: int) -> int | None:
    """VmHWM: the most resident memory the process ever had."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


class WakeupCounter:
    """Voluntary context switches of every thread of ``pid`` ever seen: each is one time a
    thread went to sleep, so between two reads, how often the process was woken and slept
    again. A thread that ends keeps the count it had at the last read (a plain sum over the
    live threads would go down when the guard's short-lived kill threads end)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._last: dict[str, int] = {}

    def read(self) -> int | None:
        """The running total; None once the process is gone (or before it had a thread)."""
        try:
            tasks = list(Path(f"/proc/{self.pid}/task").iterdir())
        except OSError:
            return None
        for task in tasks:
            with contextlib.suppress(OSError, ValueError):
                for line in (task / "status").read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches:"):
                        count = int(line.split()[1])
                        self._last[task.name] = max(count, self._last.get(task.name, 0))
                        break
        return sum(self._last.values()) if self._last else None


# A guard still importing runs near a whole core; one at rest stays well under a tenth of one,
# even a guard polling every 0.1 s under emulation (about 4 %). A bar of 2 % was never met
# while such a guard ran, so its idle windows were all marked as measured during start-up.
STARTED_UP_SHARE = 0.10


def started_up(cpu_used: dict[str, float], seconds: float) -> bool:
    """Whether every process is past its start-up: each used under ``STARTED_UP_SHARE`` of
    one core over the last ``seconds`` (``cpu_used``: CPU seconds in that span, by name)."""
    return all(used < STARTED_UP_SHARE * seconds for used in cpu_used.values())
