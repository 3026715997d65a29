"""Fake cgroup v2 directories (plain files in a tmp dir) for unit tests of cgroupfs and monitors."""

from pathlib import Path

import pytest

from oomguard.monitor.kernel.cgroupfs import Cgroup

MEMORY_EVENTS = b"low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"

FAKE_FILES = {
    "cgroup.controllers": b"cpu io memory pids\n",
    "cgroup.subtree_control": b"",
    "cgroup.procs": b"",
    "cgroup.events": b"populated 0\nfrozen 0\n",
    "cgroup.kill": b"",
    "memory.current": b"104857600\n",
    "memory.stat": b"anon 83886080\nfile 20971520\nactive_file 1048576\ninactive_file 19922944\n",
    "memory.events": MEMORY_EVENTS,
    "memory.high": b"max\n",
    "memory.max": b"max\n",
    "memory.pressure": (
        b"some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
        b"full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    ),
}


def write_fake_cgroup(path: Path) -> Cgroup:
    path.mkdir(parents=True, exist_ok=True)
    for name, data in FAKE_FILES.items():
        (path / name).write_bytes(data)
    return Cgroup(path)


@pytest.fixture
def fake_cgroup(tmp_path) -> Cgroup:
    """A directory that looks like a cgroup v2 memory cgroup: plain files, real inotify."""
    return write_fake_cgroup(tmp_path / "guarded")
