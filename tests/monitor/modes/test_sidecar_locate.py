"""Sidecar mode waits for a workload that starts after it (a native sidecar), and for its
container's limit (written by the runtime after the first process joins), and only for
that: every other setup error is raised at once."""

import argparse
from pathlib import Path, PurePosixPath

import pytest
from monitor_fakes import MI, write_fake_cgroup

from oomguard.monitor.kernel.procfs import ProcReader
from oomguard.monitor.modes.sidecar_layout import NoWorkloadYet, SidecarSetupError
from oomguard.monitor.modes.sidecar_locate import (
    LimitPending,
    SidecarPlan,
    locate_when_started,
    plan_in_pod,
)
from oomguard.monitor.runtime.stop_signal import StopSignal

PLAN = SidecarPlan(Path("/c"), PurePosixPath("pod"), PurePosixPath("pod/app"), None, 400, 300)


class Looks:
    """Answers each look with the next of ``answers`` (an exception is raised); a clock
    that advances one second per look."""

    def __init__(self, *answers: SidecarPlan | Exception) -> None:
        self.answers = list(answers)
        self.count = 0
        self.now = 0.0

    def __call__(self) -> SidecarPlan:
        self.count += 1
        self.now += 1.0
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def clock(self) -> float:
        return self.now


def test_a_workload_that_starts_later_is_found_once_it_has_started():
    looks = Looks(NoWorkloadYet("none"), NoWorkloadYet("none"), PLAN)
    assert locate_when_started(looks, StopSignal(), 60, interval=0, clock=looks.clock) == PLAN
    assert looks.count == 3


def test_other_setup_errors_are_not_waited_out():
    looks = Looks(SidecarSetupError("found two workload containers"), PLAN)
    with pytest.raises(SidecarSetupError, match="two") as raised:
        locate_when_started(looks, StopSignal(), 60, interval=0, clock=looks.clock)
    assert not isinstance(raised.value, NoWorkloadYet)
    assert looks.count == 1


def test_it_gives_up_after_the_wait_and_says_which_option_sets_it():
    looks = Looks(*[NoWorkloadYet("found none")] * 10)
    with pytest.raises(NoWorkloadYet, match=r"within 3 s \(--workload-wait\): found none"):
        locate_when_started(looks, StopSignal(), 3, interval=0, clock=looks.clock)
    assert looks.count == 3  # looks at 1 s and 2 s, gives up at the third (3 s)


def test_a_stop_during_the_wait_ends_it_without_a_plan():
    stop = StopSignal()
    stop.set()
    looks = Looks(NoWorkloadYet("none"), PLAN)
    assert locate_when_started(looks, stop, 60, interval=0, clock=looks.clock) is None
    assert looks.count == 1


POD_PLAN = SidecarPlan(Path("/c"), PurePosixPath("pod"), PurePosixPath("pod/app"), None, 496, 396)


def test_a_container_without_its_limit_yet_is_waited_for():
    looks = Looks(LimitPending(POD_PLAN), LimitPending(POD_PLAN), PLAN)
    found = locate_when_started(looks, StopSignal(), 60, interval=0, clock=looks.clock)
    assert found == PLAN  # the container's own limit, once its runtime wrote it
    assert looks.count == 3


def test_a_container_that_never_gets_a_limit_is_guarded_on_the_pods_after_the_settle_time():
    looks = Looks(*[LimitPending(POD_PLAN)] * 10)
    found = locate_when_started(
        looks, StopSignal(), 60, interval=0, clock=looks.clock, settle_seconds=3
    )
    assert found == POD_PLAN
    assert looks.count == 4  # pending first seen at 1 s, taken at 4 s


def pod_tree(root: Path, container_max: bytes) -> argparse.Namespace:
    """A pod cgroup limited to 496Mi with an app container whose memory.max is given."""
    write_fake_cgroup(root / "pod")
    (root / "pod" / "memory.max").write_bytes(b"520093696\n")
    write_fake_cgroup(root / "pod" / "app")
    (root / "pod" / "app" / "memory.max").write_bytes(container_max)
    return argparse.Namespace(workload_cgroup="pod/app", memory_high=None, reserve=100 * MI)


def test_an_unlimited_container_in_a_limited_pod_is_a_limit_not_yet_written(tmp_path):
    args = pod_tree(tmp_path, b"max\n")
    with pytest.raises(LimitPending, match="no memory limit yet") as raised:
        plan_in_pod(args, tmp_path, PurePosixPath("pod"), None, ProcReader())
    assert (raised.value.plan.limit, raised.value.plan.memory_high) == (496 * MI, 396 * MI)


def test_the_containers_own_limit_draws_the_line(tmp_path):
    args = pod_tree(tmp_path, b"419430400\n")
    plan = plan_in_pod(args, tmp_path, PurePosixPath("pod"), None, ProcReader())
    assert (plan.limit, plan.memory_high) == (400 * MI, 300 * MI)


def test_an_explicit_memory_high_does_not_wait_for_the_containers_limit(tmp_path):
    args = pod_tree(tmp_path, b"max\n")
    args.memory_high = 250 * MI
    plan = plan_in_pod(args, tmp_path, PurePosixPath("pod"), None, ProcReader())
    assert plan.memory_high == 250 * MI
