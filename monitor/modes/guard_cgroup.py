"""Where `oomguard guard` puts the command, and undoing every change on the way out.

A new guarded cgroup is a child of the cgroup oomguard runs in (or of ``--parent``).
Children only get ``memory.*`` files when the parent has ``memory`` in its
``cgroup.subtree_control``, and cgroup v2's no-internal-process rule forbids enabling it
while processes live directly in a non-root parent. If the only such process is oomguard
itself, it moves itself into a leaf ``oomguard-supervisor-<pid>`` first; if others live
there too (e.g. the login shell), it refuses with an error that says so rather than
moving processes it does not own. On exit every step is undone in reverse order: the
guarded cgroup is emptied (``cgroup.kill``) and removed, ``+memory`` is withdrawn if we
added it, oomguard moves back and the supervisor leaf is removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.kernel.cgroupfs import (
    Cgroup,
    CgroupError,
    CgroupGone,
    cgroup_path_of_process,
    find_cgroup2_mount,
)
from oomguard.monitor.kernel.memory_limit import MemoryLimit

log = logging.getLogger("oomguard.guard")

EMPTY_WAIT = 5.0  # seconds to wait for a killed cgroup to empty before rmdir


def own_cgroup(mount: Path | None = None) -> Cgroup:
    mount = mount or find_cgroup2_mount()
    return Cgroup(mount / cgroup_path_of_process("self").lstrip("/"))


def resolve_cgroup(path: str, mount: Path | None = None) -> Cgroup:
    """``--cgroup``/``--parent``: a path under the cgroup2 mount, absolute or relative to it."""
    mount = mount or find_cgroup2_mount()
    candidate = Path(path)
    if candidate.is_absolute() and candidate.is_relative_to(mount):
        resolved = candidate
    else:
        resolved = mount / path.lstrip("/")
    cgroup = Cgroup(resolved)
    if not cgroup.exists():
        raise CgroupError(f"no such cgroup: {resolved}")
    return cgroup


def tree_pids(cgroup: Cgroup) -> list[int]:
    """Processes of a cgroup and all its descendants (the command may create sub-cgroups)."""
    pids: list[int] = []
    for directory, _dirs, _files in os.walk(cgroup.path):
        with contextlib.suppress(CgroupGone):
            pids.extend(Cgroup(directory).pids())
    return pids


def empty_and_remove(cgroup: Cgroup) -> None:
    """Kill whatever is left in the subtree, wait until empty, rmdir bottom-up."""
    if not cgroup.exists():
        return
    if tree_pids(cgroup):
        try:
            cgroup.kill()
        except CgroupError:  # cgroup.kill needs Linux 5.14: signal one by one
            for pid in tree_pids(cgroup):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
        deadline = time.monotonic() + EMPTY_WAIT
        while tree_pids(cgroup) and time.monotonic() < deadline:
            time.sleep(0.01)
    for directory, _dirs, _files in os.walk(cgroup.path, topdown=False):
        Cgroup(directory).remove()


def _is_root(cgroup: Cgroup) -> bool:
    return not (cgroup.path / "cgroup.type").exists()  # the root has no cgroup.type


@contextlib.contextmanager
def memory_enabled_below(parent: Cgroup) -> Iterator[None]:
    """Make ``parent`` able to have children with memory.* files; undo on exit."""
    with contextlib.ExitStack() as undo:
        if "memory" not in parent.subtree_control():
            parent.require_memory_controller()
            me = os.getpid()
            internal = [] if _is_root(parent) else parent.pids()
            if internal and set(internal) != {me}:
                raise CgroupError(
                    f"cannot enable the memory controller below {parent.path}: other processes "
                    f"live in it (pids {sorted(internal)[:5]}), and cgroup v2 "
                    "forbids controllers for children of a cgroup with processes. Use --parent "
                    "with a delegated cgroup, or run under `systemd-run --scope -p Delegate=yes`."
                )
            if internal:
                leaf = parent.child(f"oomguard-supervisor-{me}").create()
                undo.callback(_remove_quietly, leaf)
                leaf.add_process(me)
                undo.callback(_move_back, parent, me)
                log_event(
                    log, logging.INFO, "moved oomguard into a leaf cgroup", leaf=str(leaf.path)
                )
            parent.enable_memory_for_children()
            undo.callback(_disable_memory_quietly, parent)
        yield


@contextlib.contextmanager
def created_cgroup(parent: Cgroup, name: str) -> Iterator[Cgroup]:
    """A new child cgroup with the memory controller; emptied and removed on exit."""
    with memory_enabled_below(parent):
        cgroup = parent.child(name).create()
        try:
            yield cgroup
        finally:
            empty_and_remove(cgroup)


@contextlib.contextmanager
def limits_applied(
    cgroup: Cgroup, memory_high: int | None, memory_max: int | None
) -> Iterator[None]:
    """Set memory.max then memory.high (None: leave it); restore previous values on exit."""
    with contextlib.ExitStack() as undo:
        if memory_max is not None:
            previous_max = cgroup.memory_max()
            cgroup.set_memory_max(MemoryLimit(memory_max))
            undo.callback(_restore, cgroup, "memory.max", previous_max)
        if memory_high is not None:
            previous_high = cgroup.memory_high()
            cgroup.set_memory_high(MemoryLimit(memory_high))
            undo.callback(_restore, cgroup, "memory.high", previous_high)
        yield


def _restore(cgroup: Cgroup, name: str, value: MemoryLimit) -> None:
    with contextlib.suppress(CgroupGone):
        cgroup.write(name, f"{value}\n".encode())


def _remove_quietly(cgroup: Cgroup) -> None:
    try:
        cgroup.remove()
    except CgroupError as exc:
        log_event(log, logging.WARNING, "could not remove cgroup", error=str(exc))


def _move_back(parent: Cgroup, pid: int) -> None:
    try:
        parent.add_process(pid)
    except CgroupError as exc:
        log_event(log, logging.WARNING, "could not move oomguard back", error=str(exc))


def _disable_memory_quietly(parent: Cgroup) -> None:
    try:
        parent.write("cgroup.subtree_control", b"-memory")
    except CgroupError as exc:
        log_event(log, logging.WARNING, "could not withdraw +memory", error=str(exc))
