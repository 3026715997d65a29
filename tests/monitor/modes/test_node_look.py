"""The agent's last look: what /healthz says about loop steps, and what a failure keeps."""

from oomguard.monitor.modes.node_look import NodeLook
from oomguard.monitor.modes.node_measurer import Measurement


def test_healthy_unless_a_step_runs_five_ticks_or_ten_seconds():
    look = NodeLook()
    assert look.healthy(100.0, 1.0) == (True, "starting")
    look.failed(100.0, "cannot measure")
    assert look.healthy(10_000.0, 1.0) == (True, "ok")  # idle: no timer, no steps, alive
    look.began(200.0)
    assert look.healthy(209.9, 1.0)[0] is True
    assert look.healthy(210.0, 1.0) == (False, "a loop step has run for 10.0s")
    assert look.healthy(210.0, 3.0)[0] is True  # 5 ticks of 3 s
    look.ended()
    assert look.healthy(500.0, 1.0) == (True, "ok")


def test_a_failed_look_keeps_the_last_measurement_and_says_why():
    look = NodeLook()
    m = Measurement(usage=1, pods={}, cgroups={}, candidates=[])
    look.saw(1.0, m)
    assert look.failed(2.0, "gone") == "gone"
    assert (look.last, look.error, look.stepped_at) == (m, "gone", 2.0)
    look.saw(3.0, m)
    assert look.error is None
