"""Sidecar mode waits for a workload that starts after it (a native sidecar), and only for
that: every other setup error is raised at once."""

from pathlib import Path, PurePosixPath

import pytest

from oomguard.monitor.modes.sidecar_layout import NoWorkloadYet, SidecarSetupError
from oomguard.monitor.modes.sidecar_locate import SidecarPlan, locate_when_started
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
