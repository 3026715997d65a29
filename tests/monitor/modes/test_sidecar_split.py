"""The sidecar's split of the workload cgroup, on a plain-file tree: a move the kernel
refuses for a live process is an error that says what the pod spec must change, never a
process silently left behind."""

import os
import shutil

import pytest

from oomguard.monitor.kernel.cgroupfs import Cgroup
from oomguard.monitor.kernel.procfs import ProcReader
from oomguard.monitor.modes.sidecar_layout import WORKERS_LEAF, WorkerSelector
from oomguard.monitor.modes.sidecar_split import (
    MoveRefused,
    WorkersSplit,
    sweep_until_stopped,
    workers_split,
)
from oomguard.monitor.runtime.stop_signal import StopSignal


def test_a_refused_move_of_a_live_process_names_nsdelegate_and_the_fix(tmp_path):
    workload = tmp_path / "app"
    workload.mkdir()
    (workload / "cgroup.procs").write_text(f"{os.getpid()}\n")  # alive: this test's process
    (workload / "cgroup.subtree_control").write_text("")
    # the workers leaf's cgroup.procs cannot be written: the kernel's refusal, as a file sees it
    (workload / WORKERS_LEAF / "cgroup.procs").mkdir(parents=True)
    split = WorkersSplit(Cgroup(workload), WorkerSelector(None, main_pid=1), ProcReader())
    refusal = rf"refused to move process {os.getpid()}"
    with pytest.raises(MoveRefused, match=refusal) as refused, workers_split(split):
        pass
    assert "nsdelegate" in str(refused.value)
    assert "privileged" in str(refused.value)


def test_the_workload_container_ending_ends_the_sweep_without_an_error(tmp_path):
    """The runtime removes the app's cgroup when the app exits: the sidecar is done, not
    broken (its /healthz must not fail and it must not exit 1 for that)."""
    workload = tmp_path / "app"
    (workload / "oomguard-main").mkdir(parents=True)
    (workload / "oomguard-main" / "cgroup.procs").write_text("")
    split = WorkersSplit(Cgroup(workload), WorkerSelector(), ProcReader())
    shutil.rmtree(workload)
    stop, errors = StopSignal(), []
    sweep_until_stopped(split, stop, 0.0, errors)
    assert stop.is_set()
    assert errors == []
