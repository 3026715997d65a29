import json

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
