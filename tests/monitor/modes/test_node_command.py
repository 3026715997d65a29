import json
import os

import pytest

from oomguard.cli import main
from oomguard.monitor.modes.node_command import kernel_version, memory_high_is_safe
from oomguard.monitor.modes.status_command import render_table


@pytest.mark.parametrize(
    ("release", "version", "safe"),
    [
        ("6.1.0-18-amd64", (6, 1), True),
        ("5.9.0", (5, 9), True),
        ("5.8.18-100.fc31.x86_64", (5, 8), False),
        ("4.19.0-26-amd64", (4, 19), False),
        ("5.10.0", (5, 10), True),
    ],
)
def test_kernel_versions(release, version, safe):
    assert kernel_version(release) == version
    assert memory_high_is_safe(release) is safe


def test_unreadable_release():
    with pytest.raises(ValueError):
        kernel_version("garbage")


def test_refuses_without_node_name(monkeypatch, capsys):
    monkeypatch.delenv("NODE_NAME", raising=False)
    assert main(["monitor"]) == 2
    assert "NODE_NAME" in capsys.readouterr().err


def test_refuses_without_memory_controller(tmp_path, capsys):
    (tmp_path / "cgroup.controllers").write_text("cpu io pids\n")
    assert main(["monitor", "--node-name", "n", "--cgroup-root", str(tmp_path)]) == 2
    assert "cgroup v2 with the memory controller" in capsys.readouterr().err


def test_refuses_without_kubepods(tmp_path, capsys):
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "system.slice").mkdir()
    assert main(["monitor", "--node-name", "n", "--cgroup-root", str(tmp_path)]) == 2
    assert "kubepods" in capsys.readouterr().err


def test_refuses_missing_explicit_kubepods(tmp_path, capsys):
    (tmp_path / "cgroup.controllers").write_text("memory\n")
    args = ["monitor", "--node-name", "n", "--cgroup-root", str(tmp_path)]
    assert main([*args, "--kubepods-cgroup", "/kubelet.slice/kubelet-kubepods.slice"]) == 2
    assert "does not exist" in capsys.readouterr().err


STATUS = {
    "mode": "node",
    "node": "node-a",
    "cgroup": "/sys/fs/cgroup/kubepods.slice",
    "driver": "systemd",
    "memory_high": 2**30,
    "memory_high_set": True,
    "target": 2**29,
    "usage": 3 * 2**28,
    "dry_run": False,
    "api_connected": True,
    "counters": {"evicted": 2, "killed": 0},
    "eviction_order": [
        {"pod": "apps/new", "uid": "u1", "memory": 2**27, "started_at": 1700000000, "rank": 0}
    ],
    "protected": [{"pod": "kube-system/dns", "why": "namespace kube-system is protected"}],
}


def test_status_table():
    table = render_table(STATUS)
    assert "1.0Gi" in table and "768.0Mi" in table and "evicted=2" in table
    assert "apps/new" in table and "128.0Mi" in table and "2023-11-14T22:13:20Z" in table
    assert "kube-system/dns" in table


def test_status_command_reads_the_agent(capsys):
    from oomguard.monitor.feedback.http_endpoints import HttpEndpoints

    server = HttpEndpoints("127.0.0.1", 0)
    server.add_route("/status", lambda: (200, "application/json", json.dumps(STATUS).encode()))
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/status"
        assert main(["status", "--url", url, "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == STATUS
        assert main(["status", "--url", url]) == 0
        assert "eviction order" in capsys.readouterr().out
    finally:
        server.stop()


@pytest.mark.parametrize(("release", "allowed"), [("5.4.0-150-generic", False), ("6.1.0-9", True)])
def test_memory_high_allowed_says_why_not_on_old_kernels(monkeypatch, caplog, release, allowed):
    from types import SimpleNamespace

    from oomguard.monitor.modes import node_command

    monkeypatch.setattr(node_command.os, "uname", lambda: SimpleNamespace(release=release))
    with caplog.at_level("WARNING"):
        assert node_command._memory_high_allowed("threshold monitor only") is allowed
    warned = [r.getMessage() for r in caplog.records if "older than 5.9" in r.getMessage()]
    assert bool(warned) is not allowed
    if warned:
        assert warned[0].endswith("(allocator livelock risk); threshold monitor only")


def _layout(tmp_path, kubepods_mode: str):
    """A fake host tree at tmp_path/cg and a mountinfo saying how the chart mounted it."""
    from pathlib import Path

    root = Path(os.path.realpath(tmp_path)) / "cg"
    (root / "kubepods.slice").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_bytes(
        f"1215 1200 0:30 /../.. {root} ro,nosuid - cgroup2 cgroup2 rw\n"
        f"1216 1215 0:30 /../../kubepods.slice {root}/kubepods.slice {kubepods_mode},nosuid"
        " - cgroup2 cgroup2 rw\n".encode()
    )
    return root, mountinfo


def test_refuses_a_kubepods_on_a_read_only_mount(tmp_path, capsys, monkeypatch):
    from oomguard.monitor.modes import cgroup_mounts

    root, mountinfo = _layout(tmp_path, "ro")
    monkeypatch.setattr(cgroup_mounts, "MOUNTINFO", mountinfo)
    args = ["monitor", "--node-name", "n", "--cgroup-root", str(root), "--state-dir", ""]
    assert main([*args, "--cgroup-driver", "systemd"]) == 2
    err = capsys.readouterr().err
    assert f"the kubepods cgroup {root}/kubepods.slice is on a read-only mount" in err
    assert "agent.cgroupDriver" in err


def test_a_read_only_tree_with_a_writable_kubepods_is_what_the_chart_mounts(tmp_path):
    from oomguard.monitor.modes.cgroup_mounts import CgroupMounts, cgroup_mounts

    root, mountinfo = _layout(tmp_path, "rw")
    mounts = cgroup_mounts(root, root / "kubepods.slice", mountinfo)
    assert not mounts.kubepods_read_only
    assert mounts.describe() == {
        "root_mount": f"{root} (ro)",
        "kubepods_mount": f"{root}/kubepods.slice (rw)",
    }
    unreadable = cgroup_mounts(root, root / "kubepods.slice", tmp_path / "none")
    assert unreadable == CgroupMounts(None, None) and not unreadable.kubepods_read_only
