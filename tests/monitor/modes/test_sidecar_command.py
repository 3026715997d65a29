"""`oomguard monitor --mode sidecar` refuses clearly when it cannot find or use its pod, and
waits, serving its probes, for a workload that starts after it (a native sidecar)."""

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from monitor_fakes import free_port, wait_for

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
    assert sidecar(tmp_path, "--pod-uid", uid, "--workload-wait", "0") == 2
    err = capsys.readouterr().err
    assert "no workload container started within 0 s (--workload-wait)" in err
    assert "--workload-cgroup" in err


def answer(url: str) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return None  # not listening yet


def test_waiting_for_the_workload_it_is_healthy_not_ready_and_a_sigterm_ends_it(tmp_path):
    """A native sidecar starts before the workload: its startupProbe (``/healthz``) must pass
    while it waits, or the kubelet never starts the workload; ``/readyz`` must not."""
    uid = "0f6b3c2e-1d2a-4c5b-8e9f-a1b2c3d4e5f6"
    pod = tmp_path / "kubepods" / "burstable" / f"pod{uid}"
    fake_cgroup(pod, str(500 * MI))
    fake_cgroup(pod / "sandbox")
    port = free_port()
    args = ["monitor", "--mode", "sidecar", "--cgroup-root", str(tmp_path), "--pod-uid", uid]
    args += ["--http-host", "127.0.0.1", "--http-port", str(port), "--workload-wait", "600"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    code = "import sys; from oomguard.cli import main; sys.exit(main(sys.argv[1:]))"
    with subprocess.Popen(
        [sys.executable, "-c", code, *args], env=env, stderr=subprocess.PIPE, text=True
    ) as sidecar_process:
        try:
            base = f"http://127.0.0.1:{port}"
            assert wait_for(lambda: answer(f"{base}/healthz") is not None, timeout=60)
            waiting = "waiting for the workload container to start\n"
            assert answer(f"{base}/healthz") == (200, waiting)
            assert answer(f"{base}/readyz") == (503, waiting)
            assert sidecar_process.poll() is None, "it gave up instead of waiting"
            sidecar_process.send_signal(signal.SIGTERM)
            assert sidecar_process.wait(timeout=60) == 0
        finally:
            sidecar_process.kill()
