"""Thin operations on a cgroup v2 directory: read and write its interface files.

Every function here does I/O and nothing else; parsing lives in the pure modules
(memory_events, memory_stat, ...). OS errors become :class:`CgroupError` with the
file path in the message, and :class:`CgroupGone` when the cgroup was removed
(ENOENT on a file of an existing-looking cgroup, or ENODEV from a file opened
before the rmdir), so monitors can say "the cgroup disappeared" instead of
printing an errno.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath

from oomguard.monitor.kernel.cgroup_events import CgroupEvents, parse_cgroup_events
from oomguard.monitor.kernel.memory_events import MemoryEvents, parse_memory_events
from oomguard.monitor.kernel.memory_limit import (
    MemoryLimit,
    format_memory_limit,
    parse_memory_limit,
)
from oomguard.monitor.kernel.memory_pressure import MemoryPressure, parse_memory_pressure
from oomguard.monitor.kernel.memory_stat import MemoryStat, parse_memory_stat, working_set_bytes
from oomguard.monitor.kernel.mountinfo import cgroup2_mount_point, parse_mountinfo
from oomguard.monitor.kernel.parse_error import ParseError, parse_u64

# where these lived before monitor/runtime; kept for existing imports
from oomguard.monitor.runtime.termination import Terminated as Terminated
from oomguard.monitor.runtime.termination import (
    signals_raise_terminated as signals_raise_terminated,
)

_GONE_ERRNOS = (errno.ENOENT, errno.ENODEV)


class CgroupError(RuntimeError):
    """An operation on a cgroup file failed; the message names the file and the reason."""


class CgroupGone(CgroupError):
    """The cgroup directory no longer exists (removed while we watched it)."""


class CgroupV2Unavailable(CgroupError):
    """No cgroup2 mount, or its memory controller is missing (e.g. bound to cgroup v1)."""


def find_cgroup2_mount(mountinfo: Path = Path("/proc/self/mountinfo")) -> Path:
    """Where the cgroup2 hierarchy is mounted; :class:`CgroupV2Unavailable` if nowhere."""
    mount = cgroup2_mount_point(parse_mountinfo(mountinfo.read_bytes(), str(mountinfo)))
    if mount is None:
        raise CgroupV2Unavailable(f"no cgroup2 filesystem is mounted (checked {mountinfo})")
    return mount


def cgroup_path_of_process(pid: int | str = "self", proc: Path = Path("/proc")) -> str:
    """The cgroup2 path (relative to the mount, e.g. ``/user.slice/x.scope``) of a process,
    from the ``0::PATH`` line of /proc/PID/cgroup."""
    source = proc / str(pid) / "cgroup"
    for line in source.read_text().splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            return path
    raise CgroupV2Unavailable(f"{source} has no cgroup2 ('0::') line")


def walk_cgroups(root: Path, top: PurePosixPath, depth: int = 4) -> list[PurePosixPath]:
    """Directories under ``root/top`` down to ``depth`` levels, relative to ``root``."""
    found: list[PurePosixPath] = []
    level = [top]
    for _ in range(depth):
        next_level: list[PurePosixPath] = []
        for rel in level:
            try:
                entries = list(os.scandir(root / rel))
            except OSError:
                continue  # removed while we walked: it simply is not there any more
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    next_level.append(rel / entry.name)
        found.extend(next_level)
        level = next_level
    return found


class Cgroup:
    """One cgroup v2 directory. Cheap to create; nothing is read until asked.

    The path is not checked at construction, so a ``Cgroup`` can name a cgroup
    about to be created (:meth:`create`) or one that was removed (reads raise
    :class:`CgroupGone`).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Cgroup({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cgroup) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # -- raw file access -------------------------------------------------------------

    def file(self, name: str) -> Path:
        return self.path / name

    def read(self, name: str) -> bytes:
        """Bytes of one interface file, in one read (kernel files are small and atomic)."""
        path = self.file(name)
        try:
            with path.open("rb", buffering=0) as f:
                return f.read()
        except OSError as exc:
            raise self._error("read", path, exc) from exc

    def write(self, name: str, data: bytes) -> None:
        """Write in one ``write(2)``: cgroup files take one command per write."""
        path = self.file(name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)  # as `echo >`
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._error("write", path, exc) from exc

    def _error(self, verb: str, path: Path, exc: OSError) -> CgroupError:
        reason = exc.strerror or str(exc)
        if exc.errno in _GONE_ERRNOS and (exc.errno == errno.ENODEV or not self.path.is_dir()):
            return CgroupGone(f"cgroup {self.path} is gone (cannot {verb} {path.name}: {reason})")
        return CgroupError(f"cannot {verb} {path}: {reason}")

    # -- hierarchy -------------------------------------------------------------------

    def exists(self) -> bool:
        return self.path.is_dir()

    def made_at(self) -> float:
        """When this cgroup was made, as far as the file system says: its directory's mtime
        (wall clock, epoch seconds).

        cgroup v2 has no creation-time file. kernfs stamps a cgroup directory's inode when
        it is made (the kubelet's or systemd's mkdir of a pod cgroup, as the pod sandbox
        starts), and nothing the kubelet does to a running pod writes the directory. The
        mtime rather than the ctime: a chown or chmod (systemd delegating a unit) moves the
        ctime, not the mtime. It can move later (kernfs restamps a directory whose inode
        left the inode cache and is read again, and may when a child cgroup is added): a
        pod then looks newer than it is, never older. Process start times
        (``/proc/<pid>/stat``) would be exact but cost a read per process per step, and
        this is only read for pods known from their cgroup alone (kill-only candidates).
        """
        try:
            return self.path.stat().st_mtime
        except OSError as exc:
            raise self._error("stat", self.path, exc) from exc

    def child(self, name: str) -> Cgroup:
        """The sub-cgroup ``name`` (not created; see :meth:`create`)."""
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"not a cgroup name: {name!r}")
        return Cgroup(self.path / name)

    def create(self, exist_ok: bool = False) -> Cgroup:
        """``mkdir`` this cgroup; the kernel fills it with interface files."""
        try:
            self.path.mkdir(exist_ok=exist_ok)
        except OSError as exc:
            raise CgroupError(f"cannot create cgroup {self.path}: {exc.strerror}") from exc
        return self

    def remove(self) -> None:
        """``rmdir``: only works once no process and no child cgroup is left (EBUSY)."""
        try:
            self.path.rmdir()
        except OSError as exc:
            raise CgroupError(f"cannot remove cgroup {self.path}: {exc.strerror}") from exc

    def controllers(self) -> frozenset[str]:
        """Controllers available to this cgroup (``cgroup.controllers``)."""
        return frozenset(self.read("cgroup.controllers").decode("ascii", "replace").split())

    def subtree_control(self) -> frozenset[str]:
        """Controllers enabled for this cgroup's children."""
        return frozenset(self.read("cgroup.subtree_control").decode("ascii", "replace").split())

    def require_memory_controller(self) -> None:
        """Raise :class:`CgroupV2Unavailable` unless ``memory`` is in cgroup.controllers."""
        if "memory" not in self.controllers():
            raise CgroupV2Unavailable(
                f"the memory controller is not available in {self.path} "
                "(is it bound to cgroup v1, or not enabled in the parent's subtree_control?)"
            )

    def enable_memory_for_children(self) -> None:
        """Write ``+memory`` to cgroup.subtree_control, so children get memory.* files.

        The no-internal-process rule: a non-root cgroup may have processes *or*
        controllers enabled for children, not both; the kernel refuses with EBUSY
        while processes live directly in this cgroup. So the caller first moves its
        processes into a leaf child (e.g. ``self.child("leaf")``), then enables.
        Idempotent: nothing is written when memory is already enabled.
        """
        if "memory" in self.subtree_control():
            return
        try:
            self.write("cgroup.subtree_control", b"+memory")
        except CgroupError as exc:
            cause = exc.__cause__
            if isinstance(cause, OSError) and cause.errno == errno.EBUSY:
                raise CgroupError(
                    f"cannot enable memory for children of {self.path}: processes live in it "
                    "(cgroup v2 no-internal-process rule; move them to a leaf cgroup first)"
                ) from exc
            raise

    # -- processes -------------------------------------------------------------------

    def add_process(self, pid: int) -> None:
        """Move process ``pid`` (all its threads) into this cgroup."""
        self.write("cgroup.procs", f"{pid}\n".encode())

    def pids(self) -> list[int]:
        """Process ids directly in this cgroup (not in children)."""
        source = str(self.file("cgroup.procs"))
        text = self.read("cgroup.procs").decode("ascii", "replace")
        return [
            parse_u64(token, source, number, ParseError, "pid")
            for number, token in enumerate(text.split(), 1)
        ]

    def events(self) -> CgroupEvents:
        """``cgroup.events``: is any process left in this subtree?"""
        return parse_cgroup_events(self.read("cgroup.events"), str(self.file("cgroup.events")))

    def kill(self) -> None:
        """SIGKILL every process in this subtree at once (``cgroup.kill``, Linux 5.14+).

        Atomic against forks, unlike signalling pids one by one.
        """
        self.write("cgroup.kill", b"1")

    # -- memory ----------------------------------------------------------------------

    def memory_current(self) -> int:
        """``memory.current``: bytes charged to this cgroup and its descendants."""
        name = str(self.file("memory.current"))
        text = self.read("memory.current").decode("ascii", "replace").strip()
        return parse_u64(text, name, 1, ParseError, "memory.current")

    def memory_stat(self) -> MemoryStat:
        return parse_memory_stat(self.read("memory.stat"), str(self.file("memory.stat")))

    def memory_events(self) -> MemoryEvents:
        return parse_memory_events(self.read("memory.events"), str(self.file("memory.events")))

    def memory_events_local(self) -> MemoryEvents:
        """``memory.events.local`` (5.2+): this cgroup's own events, not its descendants':
        ``oom`` here means this cgroup's own limit was the OOM domain."""
        name = "memory.events.local"
        return parse_memory_events(self.read(name), str(self.file(name)))

    def memory_pressure(self) -> MemoryPressure:
        name = "memory.pressure"
        return parse_memory_pressure(self.read(name), str(self.file(name)))

    def working_set(self) -> int:
        """``memory.current - inactive_file`` (see memory_stat for why)."""
        return working_set_bytes(self.memory_current(), self.memory_stat())

    def memory_high(self) -> MemoryLimit:
        name = "memory.high"
        return parse_memory_limit(self.read(name), str(self.file(name)))

    def set_memory_high(self, limit: MemoryLimit) -> None:
        self.write("memory.high", format_memory_limit(limit))

    def memory_max(self) -> MemoryLimit:
        name = "memory.max"
        return parse_memory_limit(self.read(name), str(self.file(name)))

    def set_memory_max(self, limit: MemoryLimit) -> None:
        self.write("memory.max", format_memory_limit(limit))


@contextmanager
def memory_high_set(cgroup: Cgroup, limit: MemoryLimit) -> Iterator[MemoryLimit]:
    """Set memory.high for the ``with`` body; restore the previous value on every exit.

    Yields the previous value. Exceptions, ``KeyboardInterrupt`` (SIGINT) and
    :class:`Terminated` (SIGTERM under ``runtime.termination.signals_raise_terminated``) all pass
    through ``finally``. A plain SIGTERM with the default action kills the process
    without running it, hence that helper. If the cgroup is gone by then, there is
    nothing to restore and no error.
    """
    previous = cgroup.memory_high()
    cgroup.set_memory_high(limit)
    try:
        yield previous
    finally:
        with suppress(CgroupGone):
            cgroup.set_memory_high(previous)
