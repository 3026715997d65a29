"""Kill every process in a cgroup subtree: ``cgroup.kill`` where the kernel has it (5.14+),
else SIGKILL to each pid in the subtree's ``cgroup.procs``, again until none is left, for a
bounded number of rounds (a process may fork between one read and the signals).

On 5.9-5.13 kernels (Debian 11, many LTS nodes) the second way is the agent's last resort.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from enum import Enum

from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError, CgroupGone

KILL_ROUNDS = 20
ROUND_PAUSE = 0.01  # between rounds: let the signalled processes exit


class KillMethod(Enum):
    CGROUP_KILL = "cgroup.kill"
    SIGNAL_EACH = "signal each process"


def kill_method(cgroup: Cgroup) -> KillMethod:
    """How this kernel kills ``cgroup`` (any non-root cgroup: the root has no cgroup.kill)."""
    return KillMethod.CGROUP_KILL if cgroup.file("cgroup.kill").exists() else KillMethod.SIGNAL_EACH


def subtree_pids(cgroup: Cgroup) -> list[int]:
    pids: list[int] = []
    for directory, _dirs, _files in os.walk(cgroup.path):
        with contextlib.suppress(CgroupGone):
            pids.extend(Cgroup(directory).pids())
    return pids


def kill_cgroup(
    cgroup: Cgroup,
    send: Callable[[int, int], None] = os.kill,
    pause: Callable[[float], None] = time.sleep,
    rounds: int = KILL_ROUNDS,
    method: KillMethod | None = None,
) -> KillMethod:
    """SIGKILL every process in ``cgroup``'s subtree; the way it was done (``method``, or
    what the kernel offers). ``CgroupGone`` when the cgroup is gone, ``CgroupError`` when
    processes are left after ``rounds``."""
    if (method or kill_method(cgroup)) is KillMethod.CGROUP_KILL:
        cgroup.kill()
        return KillMethod.CGROUP_KILL
    if not cgroup.exists():
        raise CgroupGone(f"cgroup {cgroup.path} is gone")
    for _ in range(rounds):
        pids = subtree_pids(cgroup)
        if not pids:
            return KillMethod.SIGNAL_EACH
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                send(pid, signal.SIGKILL)
        pause(ROUND_PAUSE)
    left = subtree_pids(cgroup)
    if left:
        raise CgroupError(
            f"{len(left)} process(es) left in {cgroup.path} after {rounds} rounds of SIGKILL"
        )
    return KillMethod.SIGNAL_EACH
