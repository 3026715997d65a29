"""The command ``oomguard guard -- CMD`` runs: started inside its cgroup, waited for (its
cgroup killed when it ignores a forwarded signal past the grace period), and whatever it
left behind killed so the cgroup can be removed."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from collections.abc import Sequence

from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError
from oomguard.monitor.modes.guard_cgroup import tree_pids

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
    child: subprocess.Popen[bytes], received: list[int], grace: float, cgroup: Cgroup
) -> int:
    """The command's exit status; kills the cgroup when a forwarded signal is not obeyed."""
    kill_at: float | None = None
    while True:
        try:
            returncode = child.wait(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            pass
        if received and kill_at is None:
            kill_at = time.monotonic() + grace
        if kill_at is not None and time.monotonic() >= kill_at:
            log_event(
                log,
                logging.WARNING,
                "command ignored the signal; killing its cgroup",
                grace_seconds=grace,
            )
            with contextlib.suppress(CgroupError):
                cgroup.kill()
            kill_at = float("inf")
    return returncode if returncode >= 0 else 128 - returncode
