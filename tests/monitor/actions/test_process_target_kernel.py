"""On a real kernel: a victim asleep in memory.high's throttling penalty is seen there
(its wchan) and SIGKILLed long before its grace ends."""

import subprocess
import sys
import time

import pytest
from monitor_fakes import wait_for

from oomguard.monitor.actions.process_target import ProcessTarget
from oomguard.monitor.kernel.memory_limit import MemoryLimit
from oomguard.monitor.kernel.procfs import ProcReader

pytestmark = pytest.mark.kernel

MiB = 2**20
# Ignores SIGTERM (only the SIGKILL can end it, whoever wins any race), then allocates and
# frees 300 MiB over and over: far over memory.high, so it is throttled at every return to
# user space, and under memory.max, so the kernel OOM killer has nothing to do.
ALLOCATOR = """
import signal, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("start", flush=True)
while True:
    held = b"\\1" * (300 << 20)
    del held
"""


def test_a_victim_asleep_in_the_throttling_penalty_is_killed_long_before_its_grace(
    real_cgroup,
):
    real_cgroup.set_memory_max(MemoryLimit(512 * MiB))
    real_cgroup.set_memory_high(MemoryLimit(32 * MiB))
    procs = str(real_cgroup.file("cgroup.procs"))

    def enter() -> None:  # before the child allocates anything
        with open(procs, "w") as f:
            f.write("0")

    child = subprocess.Popen(
        [sys.executable, "-c", ALLOCATOR], stdout=subprocess.PIPE, text=True, preexec_fn=enter
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "start\n"
        reader = ProcReader()
        assert wait_for(lambda: reader.throttled(child.pid), timeout=300), (
            "the allocator was never seen asleep in mem_cgroup_handle_over_high"
        )
        target = ProcessTarget(lambda: [child.pid], grace=600.0, throttled_patience=0.2)
        [victim] = target.candidates()
        sent = time.monotonic()
        target.stop([victim], detected_at=sent)
        # a 600 s grace and SIGTERM ignored: only the throttled rule ends it in this wait
        assert wait_for(lambda: target.records, timeout=120)
        [record] = target.records
        assert (record.signal, record.outcome) == ("SIGKILL", "exited")
        assert child.wait(timeout=300) == -9
    finally:
        child.kill()
        child.wait()
