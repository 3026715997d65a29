"""The chart's capabilities-only agent works on a real cgroup v2 kernel.

The DaemonSet runs the agent as uid 0 with every capability dropped except those in
values.yaml's agent.capabilities, in its own cgroup namespace, with the host's cgroup2 tree
bind-mounted (hostPath). This reproduces that on the real kernel (in the VM): a process made
by `unshare --cgroup` + `setpriv` (uid 0, bounding set = the chart's capabilities, no new
privileges), with cgroup2 mounted `nsdelegate` as systemd mounts it on real nodes, does
everything node mode does to cgroupfs: write memory.high on the pods' cgroup, read
memory.stat, watch memory.events with inotify, arm a PSI trigger on memory.pressure with the
default 1 s window, and write cgroup.kill of a pod's cgroup. Without SYS_RESOURCE the 1 s
trigger is refused (EINVAL: unprivileged PSI triggers need windows in whole multiples of
2 s), which is why the chart adds that one capability.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]
CGROUP_ROOT = Path("/sys/fs/cgroup")

PROBE = r"""
import errno, json, os, sys
from pathlib import Path
from inotify_simple import INotify, flags

kube, victim = Path(sys.argv[1]), Path(sys.argv[2])
status = Path("/proc/self/status").read_text()
out = {
    "euid": os.geteuid(),
    "cap_eff": int(next(l.split()[1] for l in status.splitlines() if l.startswith("CapEff")), 16),
    "cgroup": Path("/proc/self/cgroup").read_text().strip(),
}

def attempt(name, fn):
    try:
        fn()
        out[name] = "ok"
    except OSError as exc:
        out[name] = errno.errorcode.get(exc.errno, str(exc.errno))

def psi(window_us):
    fd = os.open(kube / "memory.pressure", os.O_RDWR | os.O_NONBLOCK)
    try:
        os.write(fd, f"some 100000 {window_us}\0".encode())
    finally:
        os.close(fd)

def watch_events():
    ino = INotify()
    ino.add_watch(str(kube / "memory.events"), flags.MODIFY)
    ino.close()

attempt("memory_high", lambda: (kube / "memory.high").write_text("536870912"))
attempt("memory_stat", lambda: (kube / "memory.stat").read_text())
attempt("inotify", watch_events)
attempt("psi_1s", lambda: psi(1_000_000))
attempt("psi_2s", lambda: psi(2_000_000))
attempt("cgroup_kill", lambda: (victim / "cgroup.kill").write_text("1"))
print(json.dumps(out))
"""


def _cgroup2_super_options() -> list[str]:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        if fields[4] == str(CGROUP_ROOT) and fields[sep + 1] == "cgroup2":
            return fields[sep + 3].split(",")
    raise AssertionError(f"no cgroup2 mounted at {CGROUP_ROOT}")


@pytest.fixture(autouse=True, scope="module")
def namespace_delegation() -> Iterator[None]:
    """Mount options as systemd sets them on real nodes: with nsdelegate, a cgroup namespace is
    a delegation boundary, which is what a container's own cgroup namespace meets there."""
    before = [o for o in _cgroup2_super_options() if o not in ("rw", "ro")]
    if "nsdelegate" not in before:
        options = ",".join(["remount", *before, "nsdelegate"])
        subprocess.run(["mount", "-o", options, str(CGROUP_ROOT)], check=True)
    assert "nsdelegate" in _cgroup2_super_options()
    yield
    if "nsdelegate" not in before:
        subprocess.run(
            ["mount", "-o", ",".join(["remount", *before]), str(CGROUP_ROOT)], check=True
        )


def chart_capabilities() -> list[str]:
    values = yaml.safe_load((REPO / "helm" / "oomguard" / "values.yaml").read_text())
    caps: list[str] = values["agent"]["capabilities"]
    return caps


@pytest.fixture
def host_tree() -> Iterator[dict[str, Path]]:
    """kubepods (memory controller on) with one pod cgroup holding a process, and the
    agent's own cgroup (its 'container'), under a throwaway parent."""
    base = CGROUP_ROOT / f"oomguard-priv-{uuid.uuid4().hex[:8]}"
    base.mkdir()
    kubepods, agent = base / "kubepods", base / "agent"
    try:
        (base / "cgroup.subtree_control").write_text("+memory")
        kubepods.mkdir()
        agent.mkdir()
        (kubepods / "cgroup.subtree_control").write_text("+memory")
        pod = kubepods / "pod1"
        pod.mkdir()
        yield {"base": base, "kubepods": kubepods, "pod": pod, "agent": agent}
    finally:
        for cg in (base / "kubepods" / "pod1", kubepods, agent, base):
            if cg.exists():
                if (cg / "cgroup.kill").exists():
                    (cg / "cgroup.kill").write_text("1")
                for _ in range(50):
                    try:
                        cg.rmdir()
                        break
                    except OSError:
                        time.sleep(0.05)


def run_as_container(tree: dict[str, Path], capabilities: list[str]) -> dict[str, Any]:
    """uid 0, bounding set = `capabilities`, private cgroup namespace rooted at the agent's
    cgroup, host cgroup tree still mounted at /sys/fs/cgroup (as the hostPath is)."""
    victim = subprocess.Popen(["sleep", "300"])
    try:
        (tree["pod"] / "cgroup.procs").write_text(str(victim.pid))
        bounding = ",".join(["-all", *(f"+{c.lower()}" for c in capabilities)])
        agent_procs = tree["agent"] / "cgroup.procs"

        def enter_agent_cgroup() -> None:
            agent_procs.write_text(str(os.getpid()))

        result = subprocess.run(
            [
                shutil.which("unshare") or "unshare",
                "--cgroup",
                shutil.which("setpriv") or "setpriv",
                "--reuid=0",
                "--regid=0",
                "--clear-groups",
                "--inh-caps=-all",
                "--ambient-caps=-all",
                f"--bounding-set={bounding}",
                "--no-new-privs",
                sys.executable,
                "-c",
                PROBE,
                str(tree["kubepods"]),
                str(tree["pod"]),
            ],
            preexec_fn=enter_agent_cgroup,
            capture_output=True,
            text=True,
            timeout=600,  # a Python start alone can take a minute in a loaded emulated VM
            check=False,
        )
        assert result.returncode == 0, result.stderr
        out: dict[str, Any] = json.loads(result.stdout)
        out["victim_killed"] = victim.wait(timeout=300) == -9
        return out
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()


def test_chart_capabilities_are_enough_for_node_mode(host_tree: dict[str, Path]) -> None:
    caps = chart_capabilities()
    assert "SYS_ADMIN" not in caps
    out = run_as_container(host_tree, caps)
    assert out["euid"] == 0
    assert out["cgroup"] == "0::/"  # its own cgroup namespace, like a container
    assert {
        k: out[k] for k in ("memory_high", "memory_stat", "inotify", "psi_1s", "cgroup_kill")
    } == {
        "memory_high": "ok",
        "memory_stat": "ok",
        "inotify": "ok",
        "psi_1s": "ok",
        "cgroup_kill": "ok",
    }
    assert (host_tree["kubepods"] / "memory.high").read_text().strip() == "536870912"
    assert out["victim_killed"]


def test_without_capabilities_only_short_psi_windows_fail(host_tree: dict[str, Path]) -> None:
    """Why SYS_RESOURCE is in the list: everything else works with no capability at all."""
    out = run_as_container(host_tree, [])
    assert out["cap_eff"] == 0
    assert out["memory_high"] == out["memory_stat"] == out["inotify"] == "ok"
    assert out["cgroup_kill"] == "ok" and out["victim_killed"]
    assert out["psi_2s"] == "ok"
    assert out["psi_1s"] in {"EINVAL", "EPERM"}
