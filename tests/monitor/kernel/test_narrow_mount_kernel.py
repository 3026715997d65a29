"""The chart's cgroup mounts on the real kernel: the host tree read-only, kubepods writable.

The agent's DaemonSet mounts the host's cgroup2 tree read-only at /host/sys/fs/cgroup and the
pods' cgroup (kubepods.slice or kubepods) writable on top of it, at the same path. This builds
that layout in a private mount namespace (``unshare --mount``): a read-only bind of the
cgroup2 root, and a writable bind of a kubepods-like cgroup at its own place inside it. Then
the agent's own code, run there, does everything node mode writes (memory.high, a PSI
trigger on memory.pressure, a pod's cgroup.kill) through the writable mount, while writing
a sibling ``system.slice``-like cgroup, killing it, or creating a cgroup beside kubepods all
fail with EROFS. mountinfo, as the kernel writes it, tells the two mounts apart, which is
what the agent checks at start.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oomguard.monitor.kernel.cgroupfs import Cgroup

pytestmark = pytest.mark.kernel

CGROUP_ROOT = Path("/sys/fs/cgroup")

PROBE = r"""
import errno, json, os, sys
from pathlib import Path

from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError
from oomguard.monitor.kernel.memory_limit import MemoryLimit
from oomguard.monitor.kernel.memory_pressure import PsiTrigger
from oomguard.monitor.modes.cgroup_mounts import cgroup_mounts
from oomguard.monitor.triggers.pressure_monitor import PressureMonitor
from oomguard.monitor.triggers.trigger import MonitorError

host, base = Path(sys.argv[1]), sys.argv[2]
kubepods = Cgroup(host / base / "kubepods")
system = Cgroup(host / base / "system.slice")
out = {}

def attempt(name, fn):
    try:
        fn()
        out[name] = "ok"
    except (CgroupError, MonitorError) as exc:
        cause = exc.__cause__
        out[name] = errno.errorcode.get(getattr(cause, "errno", 0), str(exc))
    except OSError as exc:
        out[name] = errno.errorcode.get(exc.errno, str(exc))

def psi():
    fd = PressureMonitor.for_cgroup(kubepods, PsiTrigger(100_000, 1_000_000))._open_with_trigger()
    os.close(fd)

mounts = cgroup_mounts(host, kubepods.path)
out["root_read_only"] = mounts.root is not None and mounts.root.read_only
out["kubepods_read_only"] = mounts.kubepods_read_only
attempt("kubepods_memory_high", lambda: kubepods.set_memory_high(MemoryLimit(512 << 20)))
attempt("kubepods_psi_trigger", psi)
attempt("pod_cgroup_kill", lambda: kubepods.child("pod1").kill())
attempt("system_memory_high", lambda: system.set_memory_high(MemoryLimit(1 << 20)))
attempt("system_cgroup_kill", system.kill)
attempt("new_cgroup_beside_kubepods", lambda: Cgroup(host / base / "stray").create())
print(json.dumps(out))
"""


def _sleeper_in(cgroup: Cgroup) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(["sleep", "300"])
    cgroup.add_process(process.pid)
    return process


@pytest.fixture
def host_tree(real_cgroup: Cgroup) -> Iterator[dict[str, Any]]:
    """Under a throwaway cgroup: kubepods (memory on) with a pod holding a process, and a
    system.slice beside it holding another (the kubelet and runtime, on a node)."""
    real_cgroup.enable_memory_for_children()
    kubepods = real_cgroup.child("kubepods").create()
    kubepods.enable_memory_for_children()
    system = real_cgroup.child("system.slice").create()
    pod = _sleeper_in(kubepods.child("pod1").create())
    service = _sleeper_in(system)
    try:
        yield {"base": real_cgroup, "kubepods": kubepods, "system": system, "pod": pod,
               "service": service}  # fmt: skip
    finally:
        for process in (pod, service):
            if process.poll() is None:
                process.kill()
            process.wait(timeout=300)


def run_with_chart_mounts(tree: dict[str, Any], host: Path, kubepods_writable: bool) -> Any:
    """The probe in a private mount namespace: the cgroup2 root bound read-only at ``host``,
    and (when ``kubepods_writable``) the kubepods cgroup bound writable at its place in it."""
    base = tree["base"].path.relative_to(CGROUP_ROOT)
    host.mkdir()
    script = [
        f"mount --bind {CGROUP_ROOT} {host}",
        f"mount -o remount,bind,ro {host}",
    ]
    if kubepods_writable:
        inner = host / base / "kubepods"
        script.append(f"mount --bind {tree['kubepods'].path} {inner}")
    script.append('exec "$@"')
    result = subprocess.run(
        [
            shutil.which("unshare") or "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-euc",
            " && ".join(script),
            "probe",
            sys.executable,
            "-c",
            PROBE,
            str(host),
            str(base),
        ],
        capture_output=True,
        text=True,
        timeout=600,  # a Python start alone can take a minute in a loaded emulated VM
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_only_kubepods_is_writable_through_the_charts_mounts(
    host_tree: dict[str, Any], tmp_path: Path
) -> None:
    out = run_with_chart_mounts(host_tree, tmp_path / "host-cgroup", kubepods_writable=True)
    assert out == {
        "root_read_only": True,
        "kubepods_read_only": False,
        "kubepods_memory_high": "ok",
        "kubepods_psi_trigger": "ok",
        "pod_cgroup_kill": "ok",
        "system_memory_high": "EROFS",
        "system_cgroup_kill": "EROFS",
        "new_cgroup_beside_kubepods": "EROFS",
    }
    assert host_tree["kubepods"].read("memory.high").strip() == str(512 << 20).encode()
    assert host_tree["pod"].wait(timeout=300) == -9  # killed through the writable mount
    assert host_tree["service"].poll() is None  # system.slice's process lives on
    assert host_tree["system"].read("memory.high").strip() == b"max"
    assert not (host_tree["base"].path / "stray").exists()


def test_a_kubepods_left_read_only_is_what_the_agent_refuses_at_start(
    host_tree: dict[str, Any], tmp_path: Path
) -> None:
    """The wrong driver in the chart: the writable mount is elsewhere, kubepods is read-only.
    mountinfo says so (the agent then refuses to start), and every write would fail."""
    out = run_with_chart_mounts(host_tree, tmp_path / "host-cgroup", kubepods_writable=False)
    assert out["kubepods_read_only"] is True
    assert out["kubepods_memory_high"] == out["pod_cgroup_kill"] == "EROFS"
    assert host_tree["pod"].poll() is None
