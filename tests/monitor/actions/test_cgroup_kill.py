"""Item 6 of "do no harm": kernels before 5.14 have no cgroup.kill; the last resort then
SIGKILLs every pid in the pod's subtree, again until none is left, for bounded rounds."""

import signal

import pytest

from oomguard.monitor.actions.cgroup_kill import (
    KillMethod,
    kill_cgroup,
    kill_method,
)
from oomguard.monitor.actions.outcome import Outcome
from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError


class FakeKernel:
    """cgroup.procs files that lose a pid when it is SIGKILLed; ``forks`` adds pids to a
    file the first time a given pid is signalled (a fork racing the kill)."""

    def __init__(self, procs, forks=None, immortal=()):
        self.procs = procs  # {Path: [pid]}
        self.forks = forks or {}
        self.immortal = set(immortal)
        self.signalled = []
        self.write()

    def write(self):
        for path, pids in self.procs.items():
            path.write_text("".join(f"{p}\n" for p in pids))

    def send(self, pid, signum):
        assert signum == signal.SIGKILL
        self.signalled.append(pid)
        for pids in self.procs.values():
            if pid in pids and pid not in self.immortal:
                pids.remove(pid)
                pids.extend(self.forks.pop(pid, []))
        self.write()


def pod_tree(tmp_path):
    pod = tmp_path / "pod"
    (pod / "ctr").mkdir(parents=True)
    return pod


def test_without_cgroup_kill_every_process_of_the_subtree_is_killed(tmp_path):
    pod = pod_tree(tmp_path)
    kernel = FakeKernel(
        {pod / "cgroup.procs": [10], pod / "ctr" / "cgroup.procs": [11, 12]}, forks={11: [13]}
    )
    pauses = []
    method = kill_cgroup(Cgroup(pod), send=kernel.send, pause=pauses.append)
    assert method is KillMethod.SIGNAL_EACH
    assert sorted(kernel.signalled) == [10, 11, 12, 13]  # the fork was caught in round 2
    assert all(not pids for pids in kernel.procs.values())
    assert len(pauses) == 2


def test_processes_that_do_not_die_end_in_an_error_after_bounded_rounds(tmp_path):
    pod = pod_tree(tmp_path)
    kernel = FakeKernel(
        {pod / "cgroup.procs": [10], pod / "ctr" / "cgroup.procs": []}, immortal={10}
    )
    with pytest.raises(CgroupError, match="1 process"):
        kill_cgroup(Cgroup(pod), send=kernel.send, pause=lambda _: None, rounds=5)
    assert kernel.signalled == [10] * 5


def test_cgroup_kill_is_used_where_it_exists(tmp_path):
    pod = pod_tree(tmp_path)
    (pod / "cgroup.kill").write_text("")
    (pod / "cgroup.procs").write_text("10\n")

    def never(pid, signum):
        raise AssertionError("no signal expected")

    assert kill_cgroup(Cgroup(pod), send=never) is KillMethod.CGROUP_KILL
    assert (pod / "cgroup.kill").read_text() == "1"


def test_the_method_is_detected_from_the_kill_file(tmp_path):
    pod = pod_tree(tmp_path)
    assert kill_method(Cgroup(pod)) is KillMethod.SIGNAL_EACH
    (pod / "cgroup.kill").write_text("")
    assert kill_method(Cgroup(pod)) is KillMethod.CGROUP_KILL


def test_the_evictors_last_resort_works_without_cgroup_kill(tmp_path):
    from test_pod_evictor import SITUATION, Events, FakeApi, evictor, victim

    pod = pod_tree(tmp_path)
    kernel = FakeKernel({pod / "cgroup.procs": [], pod / "ctr" / "cgroup.procs": [21, 22]})
    events = Events()
    e, _ = evictor(
        FakeApi({}),
        events,
        kill_cgroup=lambda cgroup: kill_cgroup(cgroup, send=kernel.send, pause=lambda _: None),
    )
    result = e.kill(victim("a", cgroup=pod), SITUATION)
    assert result.outcome is Outcome.KILLED
    assert "signal each process" in result.detail
    assert sorted(kernel.signalled) == [21, 22]
