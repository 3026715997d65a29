"""The command ``oomguard guard -- CMD`` runs: started inside its cgroup, waited for (its
cgroup killed when it ignores a forwarded signal past the grace period), and whatever it
left behind killed so the cgroup can be removed."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import subprocess
import time
from collections.abc import Callable, Sequence

from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError
from oomguard.monitor.modes.guard_cgroup import tree_pids
from oomguard.monitor.runtime.poller import PollerFactory, new_poller
from oomguard.monitor.runtime.stop_signal import StopSignal

log = logging.getLogger("oomguard.guard")


def empty_and_remove_processes(cgroup: Cgroup) -> None:
    """Kill what the command left behind, so the cgroup can be removed (keeps the cgroup)."""
    if tree_pids(cgroup):
        log_event(
            log,
            logging.INFO,
            "killing processes the command left behind",
            pids=tree_pids(cgroup)[:20],
        )
        with contextlib.suppress(CgroupError):
            cgroup.kill()
        deadline = time.monotonic() + 5.0
        while tree_pids(cgroup) and time.monotonic() < deadline:
            time.sleep(0.01)


def spawn_into(cgroup: Cgroup, command: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start the command already inside the cgroup, so not even its first fork escapes.

    The child writes itself into cgroup.procs between fork and exec (``preexec_fn``);
    it runs before any oomguard thread exists, which keeps preexec_fn safe.
    """
    procs = str(cgroup.file("cgroup.procs"))

    def enter_cgroup() -> None:
        fd = os.open(procs, os.O_WRONLY)
        try:
            os.write(fd, b"0\n")
        finally:
            os.close(fd)

    return subprocess.Popen(list(command), preexec_fn=enter_cgroup)


def wait_for_command(
    child: subprocess.Popen[bytes],
    received: list[int],
    signalled: StopSignal,
    grace: float,
    cgroup: Cgroup,
    *,
    poller: PollerFactory = new_poller,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """The command's exit status; kills the cgroup when a forwarded signal is not obeyed.

    Sleeps in ``poll()`` on the command's pidfd and ``signalled`` (set by the signal relay)
    with no timeout: the kernel wakes it when the command exits or a signal comes, never a
    timer. Only once a signal was forwarded does it wait with a timeout, the grace period.
    """
    pidfd = os.pidfd_open(child.pid)
    try:
        poll = poller()
        poll.register(pidfd, select.POLLIN)
        poll.register(signalled.fileno(), select.POLLIN)
        kill_at: float | None = None  # the grace period runs out then
        killed = False
        while True:
            if received and kill_at is None and not killed:
                kill_at = clock() + grace
                # the eventfd stays readable once set: from now on the deadline wakes us
                poll.unregister(signalled.fileno())
            timeout_ms = None if kill_at is None else max(0, math.ceil((kill_at - clock()) * 1000))
            ready = [fd for fd, _ in poll.poll(timeout_ms)]
            if pidfd in ready:
                break
            if kill_at is not None and clock() >= kill_at:
                log_event(
                    log,
                    logging.WARNING,
                    "command ignored the signal; killing its cgroup",
                    grace_seconds=grace,
                )
                with contextlib.suppress(CgroupError):
                    cgroup.kill()
                kill_at, killed = None, True
    finally:
        os.close(pidfd)
    returncode = child.wait()
    return returncode if returncode >= 0 else 128 - returncode
