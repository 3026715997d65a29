"""cgroupfs against the real kernel (cgroup v2 with the memory controller; the VM here)."""

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from monitor_fakes import wait_for

from oomguard.monitor.kernel.cgroupfs import (
    Cgroup,
    CgroupError,
    CgroupGone,
    find_cgroup2_mount,
)
from oomguard.monitor.kernel.memory_limit import UNLIMITED, MemoryLimit

pytestmark = pytest.mark.kernel


def test_mount_and_memory_files_parse(real_cgroup):
    assert find_cgroup2_mount() == real_cgroup.path.parent
    assert real_cgroup.memory_high() == UNLIMITED
    assert real_cgroup.memory_max() == UNLIMITED
    assert real_cgroup.memory_events().high == 0
    assert real_cgroup.memory_current() >= 0
    assert "inactive_file" in real_cgroup.memory_stat().values
    assert real_cgroup.memory_pressure().full is not None
    assert not real_cgroup.events().populated


def test_limits_round_trip_through_the_kernel(real_cgroup):
    real_cgroup.set_memory_high(MemoryLimit(64 << 20))
    real_cgroup.set_memory_max(MemoryLimit(128 << 20))
    assert real_cgroup.memory_high() == MemoryLimit(64 << 20)
    assert real_cgroup.memory_max() == MemoryLimit(128 << 20)
    real_cgroup.set_memory_high(UNLIMITED)
    assert real_cgroup.memory_high() == UNLIMITED


def test_processes_usage_populated_and_kill(real_cgroup, spawn_hog):
    hog = spawn_hog(real_cgroup, 64)
    hog.started()
    hog.touched()
    assert real_cgroup.pids() == [hog.pid]
    assert real_cgroup.events().populated
    assert real_cgroup.memory_current() >= 64 << 20
    assert real_cgroup.working_set() >= 64 << 20
    started = time.monotonic()
    real_cgroup.kill()
    assert hog.process.wait(timeout=300) == -signal.SIGKILL
    assert wait_for(lambda: not real_cgroup.events().populated, timeout=300)
    print(f"cgroup.kill reaped the hog in {(time.monotonic() - started) * 1000:.0f} ms")


def test_no_internal_process_rule_is_explained(real_cgroup, spawn_hog):
    hog = spawn_hog(real_cgroup, 1)
    hog.started()
    with pytest.raises(CgroupError, match="no-internal-process rule"):
        real_cgroup.enable_memory_for_children()
    real_cgroup.kill()
    hog.process.wait(timeout=300)
    assert wait_for(lambda: not real_cgroup.events().populated, timeout=300)
    real_cgroup.enable_memory_for_children()
    leaf = real_cgroup.child("leaf").create()
    assert "memory" in leaf.controllers()
    assert leaf.memory_high() == UNLIMITED
    leaf.remove()


def test_add_process_moves_a_running_process(real_cgroup):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        real_cgroup.add_process(sleeper.pid)
        assert real_cgroup.pids() == [sleeper.pid]
        own = Path(f"/proc/{sleeper.pid}/cgroup").read_text()
        assert own.strip().endswith("/" + real_cgroup.path.name)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_removed_cgroup_reads_as_gone(real_cgroup):
    path = real_cgroup.path
    real_cgroup.remove()
    with pytest.raises(CgroupGone, match="is gone"):
        Cgroup(path).memory_events()


def test_memory_high_is_restored_on_sigterm(real_cgroup):
    real_cgroup.set_memory_high(MemoryLimit(512 << 20))
    code = textwrap.dedent(f"""
        import sys, time
        from oomguard.monitor.kernel.cgroupfs import (
            Cgroup, Terminated, memory_high_set, signals_raise_terminated)
        from oomguard.monitor.kernel.memory_limit import MemoryLimit
        try:
            with signals_raise_terminated(), memory_high_set(
                Cgroup({str(real_cgroup.path)!r}), MemoryLimit(64 << 20)
            ):
                print("set", flush=True)
                time.sleep(30)
        except Terminated as exc:
            sys.exit(exc.exit_status)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "set\n"
    assert real_cgroup.memory_high() == MemoryLimit(64 << 20)
    child.terminate()
    assert child.wait(timeout=300) == 128 + signal.SIGTERM
    assert real_cgroup.memory_high() == MemoryLimit(512 << 20)
