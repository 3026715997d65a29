"""/proc/PID files: pure parsers (bytes in, typed values out) and a thin reader.

Memory per process is PSS from ``smaps_rollup``, falling back to ``VmRSS`` from ``status``.
Why PSS: the guard wants "what would stopping this free". A pool of forked workers shares
the parent's pages; RSS counts every shared page once per sharer, so summing RSS over
victims promises more than a kill returns and the decision stops too early. PSS splits each
shared page between its sharers, so the sum over all processes never exceeds real memory.
It costs a page-table walk per read (about 1 ms per 100 MiB), paid only when deciding.
RSS is the fallback because ``status`` stays readable where ``smaps_rollup`` is not
(no ptrace access, kernels before 4.14).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path


class ProcParseError(ValueError):
    """A /proc file whose content does not have the kernel's format."""


@dataclass(frozen=True)
class ProcStat:
    pid: int
    comm: str
    state: str
    ppid: int
    start_ticks: int  # field 22: clock ticks after boot when the process started


def parse_stat(data: bytes) -> ProcStat:
    """Parse /proc/PID/stat. ``comm`` may hold spaces and parentheses, so split at the last
    ``)`` rather than on whitespace."""
    text = data.decode("utf-8", errors="replace")
    open_paren = text.find("(")
    close_paren = text.rfind(")")
    if open_paren < 0 or close_paren < open_paren:
        raise ProcParseError(f"/proc/PID/stat without '(comm)': {data[:80]!r}")
    rest = text[close_paren + 1 :].split()
    # rest[0] is field 3 (state); field 22 (starttime) is rest[19]
    if len(rest) < 20:
        raise ProcParseError(f"/proc/PID/stat has {len(rest) + 2} fields, need 22: {data[:80]!r}")
    try:
        pid = int(text[:open_paren].strip())
        ppid = int(rest[1])
        start_ticks = int(rest[19])
    except ValueError as exc:
        raise ProcParseError(f"/proc/PID/stat has a non-numeric field: {exc}") from exc
    if pid < 0 or start_ticks < 0:
        raise ProcParseError(f"/proc/PID/stat has a negative pid or start time: {data[:80]!r}")
    return ProcStat(pid, text[open_paren + 1 : close_paren], rest[0], ppid, start_ticks)


def ticks_to_seconds(ticks: int, ticks_per_second: int) -> float:
    """Start time in seconds after boot (``ticks_per_second`` is ``SC_CLK_TCK``, usually 100)."""
    if ticks_per_second <= 0:
        raise ValueError(f"ticks_per_second must be positive, got {ticks_per_second}")
    return ticks / ticks_per_second


def parse_cmdline(data: bytes) -> tuple[str, ...]:
    """NUL-separated argv; empty for kernel threads and zombies. Undecodable bytes are kept
    as surrogate escapes so nothing is lost or invented."""
    if not data:
        return ()
    parts = data.split(b"\0")
    if parts[-1] == b"":
        parts.pop()
    return tuple(p.decode("utf-8", errors="surrogateescape") for p in parts)


def _parse_kib_fields(data: bytes, source: str) -> dict[str, int]:
    """``Key:   123 kB`` lines into bytes; lines without a kB value are ignored."""
    values: dict[str, int] = {}
    for raw in data.split(b"\n"):
        key, sep, value = raw.partition(b":")
        if not sep:
            continue
        words = value.split()
        if len(words) != 2 or words[1] != b"kB":
            continue
        try:
            number = int(words[0])
        except ValueError as exc:
            raise ProcParseError(f"{source}: bad number in {raw[:80]!r}") from exc
        if number < 0:
            raise ProcParseError(f"{source}: negative size in {raw[:80]!r}")
        values[key.decode("ascii", errors="replace").strip()] = number * 1024
    return values


class MemoryKind(Enum):
    PSS = "pss"
    RSS = "rss"


@dataclass(frozen=True)
class ProcessMemory:
    bytes: int
    kind: MemoryKind


def parse_smaps_rollup(data: bytes) -> ProcessMemory:
    """PSS from /proc/PID/smaps_rollup. An empty file (kernel thread, exiting process)
    means no memory."""
    if not data.strip():
        return ProcessMemory(0, MemoryKind.PSS)
    fields = _parse_kib_fields(data, "smaps_rollup")
    if "Pss" not in fields:
        raise ProcParseError(f"smaps_rollup without a Pss line: {data[:120]!r}")
    return ProcessMemory(fields["Pss"], MemoryKind.PSS)


def parse_status_rss(data: bytes) -> ProcessMemory:
    """VmRSS from /proc/PID/status; kernel threads and zombies have none, which is 0."""
    fields = _parse_kib_fields(data, "status")
    return ProcessMemory(fields.get("VmRSS", 0), MemoryKind.RSS)


# The kernel function a task sleeps in while it pays memory.high's throttling penalty
# (mm/memcontrol.c, on its way back to user space, up to 2 s per return).
MEMORY_HIGH_PENALTY = "mem_cgroup_handle_over_high"
_READ_SIZE = 65536  # a /proc file longer than this (a long cmdline) takes more reads


def in_memory_high_penalty(wchan: bytes) -> bool:
    """``/proc/PID/task/TID/wchan`` names the function a sleeping thread waits in (``0``
    when it runs, or when the kernel hides symbols). The penalty sleep is killable only:
    a SIGTERM handler runs after it ends, a SIGKILL ends it at once."""
    return wchan.strip() == MEMORY_HIGH_PENALTY.encode()


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    comm: str
    cmdline: tuple[str, ...]
    started_at: float  # seconds after boot
    memory: ProcessMemory


class ProcReader:
    """Reads one process's facts; ``None`` when it exited meanwhile (a normal race)."""

    def __init__(self, root: Path = Path("/proc")) -> None:
        self._root = root
        self._root_text = str(root)
        self._ticks_per_second = os.sysconf("SC_CLK_TCK")

    def stat(self, pid: int) -> ProcStat | None:
        data = self._read(pid, "stat")
        return None if data is None else parse_stat(data)

    def memory(self, pid: int) -> ProcessMemory | None:
        rollup = self._read(pid, "smaps_rollup")
        if rollup is not None:
            return parse_smaps_rollup(rollup)
        status = self._read(pid, "status")
        return None if status is None else parse_status_rss(status)

    def read(self, pid: int) -> ProcessInfo | None:
        stat = self.stat(pid)
        cmdline = self._read(pid, "cmdline")
        memory = self.memory(pid)
        if stat is None or cmdline is None or memory is None:
            return None
        started = ticks_to_seconds(stat.start_ticks, self._ticks_per_second)
        return ProcessInfo(pid, stat.ppid, stat.comm, parse_cmdline(cmdline), started, memory)

    def started_at_of(self, stat: ProcStat) -> float:
        """Seconds after boot when the process of ``stat`` started."""
        return ticks_to_seconds(stat.start_ticks, self._ticks_per_second)

    def started_at(self, pid: int) -> float | None:
        stat = self.stat(pid)
        if stat is None:
            return None
        return ticks_to_seconds(stat.start_ticks, self._ticks_per_second)

    def throttled(self, pid: int) -> bool | None:
        """Is any thread of ``pid`` asleep in memory.high's penalty? None: it is gone."""
        try:
            tids = [task.name for task in (self._root / str(pid) / "task").iterdir()]
        except (FileNotFoundError, ProcessLookupError):
            return None
        for tid in tids:
            wchan = self._read(pid, f"task/{tid}/wchan")
            if wchan is not None and in_memory_high_penalty(wchan):
                return True
        return False

    def _read(self, pid: int, name: str) -> bytes | None:
        # os.open/os.read rather than Path.read_bytes: a step lists every process of the
        # cgroup, and under emulation pathlib's per-call overhead was most of that listing
        try:
            fd = os.open(f"{self._root_text}/{pid}/{name}", os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, ProcessLookupError):
            return None
        except PermissionError:
            if name == "smaps_rollup":
                return None  # fall back to status
            raise
        try:
            chunks: list[bytes] = []
            while chunk := os.read(fd, _READ_SIZE):
                chunks.append(chunk)
            return b"".join(chunks)
        except ProcessLookupError:  # exited between open and read
            return None
        finally:
            os.close(fd)
