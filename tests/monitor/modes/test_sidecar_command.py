"""`oomguard monitor --mode sidecar` refuses clearly when it cannot find or use its pod."""

from pathlib import Path

from oomguard.cli import main

MI = 2**20


def fake_cgroup(path: Path, maximum: str = "max") -> None:
    path.mkdir(parents=True)
    (path / "memory.max").write_text(f"{maximum}\n")
    (path / "cgroup.procs").write_text("")


def sidecar(tmp_path: Path, *extra: str) -> int:
    base = ["monitor", "--mode", "sidecar", "--cgroup-root", str(tmp_path), "--http-port", "0"]
    return main([*base, *extra])


def test_missing_pod_cgroup(tmp_path, capsys):
    assert sidecar(tmp_path, "--pod-cgroup", "kubepods.slice/nope") == 2
    assert "does not exist" in capsys.readouterr().err


def test_pod_without_memory_limit(tmp_path, capsys):
    pod = tmp_path / "kubepods.slice" / "kubepods-pod0f6b3c2e_1d2a_4c5b_8e9f_a1b2c3d4e5f6.slice"
    fake_cgroup(pod)
    fake_cgroup(pod / "cri-containerd-app.scope")
    code = sidecar(
        tmp_path,
        "--pod-cgroup",
        str(pod.relative_to(tmp_path)),
        "--workload-cgroup",
        str((pod / "cri-containerd-app.scope").relative_to(tmp_path)),
    )
    assert code == 2
    assert "no memory limit" in capsys.readouterr().err


def test_pod_found_by_uid_but_no_busy_container(tmp_path, capsys, monkeypatch):
    uid = "0f6b3c2e-1d2a-4c5b-8e9f-a1b2c3d4e5f6"
    pod = tmp_path / "kubepods.slice" / "kubepods-burstable.slice"
    pod = pod / f"kubepods-burstable-pod{uid.replace('-', '_')}.slice"
    fake_cgroup(pod, str(500 * MI))
    fake_cgroup(pod / "cri-containerd-idle.scope")
    assert sidecar(tmp_path, "--pod-uid", uid) == 2
    assert "--workload-cgroup" in capsys.readouterr().err
