"""What a process costs, read from /proc: CPU seconds, resident memory, and finding the
control plane's processes among this one's children. For the scale benchmarks."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    cpu_seconds: float  # utime + stime, all threads
    rss_bytes: int
    peak_rss_bytes: int  # VmHWM


def sample(pid: int) -> ProcSample:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    kib = {key: int(status[key].split()[0]) for key in ("VmRSS", "VmHWM")}
    return ProcSample(cpu, kib["VmRSS"] * 1024, kib["VmHWM"] * 1024)


def child_pid(executable: str, parent: int | None = None) -> int:
    """The pid of this process's (or ``parent``'s) child running ``executable`` (a base name)."""
    parent = os.getpid() if parent is None else parent
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            exe = os.readlink(entry / "exe")
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == parent and Path(exe).name == executable:
            return int(entry.name)
    raise LookupError(f"no child {executable} of {parent}")


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def spread(values: Sequence[float]) -> dict[str, float]:
    """median, min, max of repeated measurements."""
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def machine() -> dict[str, object]:
    meminfo = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "mem_total_gib": round(int(meminfo[1]) / 2**20, 1),
        "kernel": os.uname().release,
        "loadavg_start": os.getloadavg(),
    }
