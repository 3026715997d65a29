"""Fake cgroup v2 directories (plain files in a tmp dir) for unit tests of cgroupfs and monitors."""

import sys
from pathlib import Path

import pytest

from oomguard.monitor.kernel.cgroupfs import Cgroup

# the shared fakes (monitor_fakes.py) import as a top-level module, like tests/cluster's helpers
sys.path.insert(0, str(Path(__file__).resolve().parent))

# after the path insert above: the fakes module is found from here
from monitor_fakes import write_fake_cgroup


@pytest.fixture
def fake_cgroup(tmp_path) -> Cgroup:
    """A directory that looks like a cgroup v2 memory cgroup: plain files, real inotify."""
    return write_fake_cgroup(tmp_path / "guarded")


# -- real cgroup v2 (kernel-marked tests; run inside the VM on this host) -------------

HOG = """
import os, sys, time
cgroup, mib, hold, mode, base_mib = sys.argv[1:6]
mib, hold, keep, base_mib = int(mib), float(hold), mode == "keep", int(base_mib)
with open(cgroup + "/cgroup.procs", "w") as f:
    f.write(str(os.getpid()))

def touch(n):
    buf = bytearray(n << 20)
    for i in range(0, len(buf), 4096):
        buf[i] = 1
    return buf

base = touch(base_mib)
print("start", time.monotonic(), flush=True)  # CLOCK_MONOTONIC: same clock as the test's
buf = touch(mib)
if not keep:
    del buf, base
print("touched", time.monotonic(), flush=True)
time.sleep(hold)
"""


@pytest.fixture
def real_cgroup():
    """A fresh child of the cgroup2 root with the memory controller; removed afterwards."""
    import uuid

    from oomguard.monitor.kernel.cgroupfs import find_cgroup2_mount

    root = Cgroup(find_cgroup2_mount())
    root.require_memory_controller()
    root.enable_memory_for_children()
    cgroup = root.child(f"oomguard-test-{uuid.uuid4().hex[:8]}").create()
    yield cgroup
    if cgroup.exists():
        cgroup.kill()
        for child in sorted(cgroup.path.rglob("*"), reverse=True):
            if child.is_dir():
                _rmdir_when_empty(Cgroup(child))
        _rmdir_when_empty(cgroup)


def _rmdir_when_empty(cgroup: Cgroup) -> None:
    import time

    deadline = time.monotonic() + 5
    while True:
        try:
            cgroup.remove()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Hog:
    """A memory hog child process and the times it reported."""

    def __init__(self, process) -> None:
        self.process = process
        self.pid = process.pid

    def started(self) -> float:
        """Block until the hog begins allocating; its time.monotonic() then."""
        kind, value = self.process.stdout.readline().split()
        assert kind == "start"
        return float(value)

    def touched(self) -> float:
        """Block until every page is touched (call after started())."""
        kind, value = self.process.stdout.readline().split()
        assert kind == "touched"
        return float(value)


@pytest.fixture
def spawn_hog():
    """``spawn_hog(cgroup, mib, hold_s=30, keep=True, base_mib=0)``: a Python child that joins
    ``cgroup``, touches ``base_mib`` MiB, prints "start T", touches ``mib`` MiB more page by
    page, frees everything unless ``keep``, prints "touched T" and sleeps ``hold_s``
    (T: its time.monotonic(), the same clock as the test's)."""
    import subprocess
    import sys

    children: list[subprocess.Popen[str]] = []

    def spawn(
        cgroup: Cgroup, mib: int, hold_s: float = 30.0, keep: bool = True, base_mib: int = 0
    ) -> Hog:
        mode = "keep" if keep else "free"
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                HOG,
                str(cgroup.path),
                str(mib),
                str(hold_s),
                mode,
                str(base_mib),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        children.append(child)
        return Hog(child)

    yield spawn
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()
