"""The kill fallback for kernels without cgroup.kill, on a real kernel with the kill file
ignored: a shell that keeps forking in a pod-like subtree is emptied by SIGKILL rounds."""

import ctypes
import os
import subprocess

import pytest
from monitor_fakes import wait_for

from oomguard.monitor.actions.cgroup_kill import KillMethod, kill_cgroup, subtree_pids

pytestmark = pytest.mark.kernel

PR_SET_CHILD_SUBREAPER = 36
FORKER = 'echo $$ > "$1/cgroup.procs"; echo in; while :; do sleep 100 & sleep 0.005; done'


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def test_signal_each_empties_a_forking_subtree(real_cgroup):
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0  # orphans come to us
    container = real_cgroup.child("ctr").create()
    forker = subprocess.Popen(
        ["sh", "-c", FORKER, "sh", str(container.path)], stdout=subprocess.PIPE, text=True
    )
    assert forker.stdout is not None
    assert forker.stdout.readline() == "in\n"
    # the shell and some sleepers
    assert wait_for(lambda: len(subtree_pids(real_cgroup)) >= 5), "the forker never forked"
    method = kill_cgroup(real_cgroup, method=KillMethod.SIGNAL_EACH)
    assert method is KillMethod.SIGNAL_EACH
    assert subtree_pids(real_cgroup) == []
    assert forker.wait(timeout=300) == -9
    assert wait_for(lambda: reap() or not real_cgroup.events().populated), (
        "the subtree stayed populated"
    )
