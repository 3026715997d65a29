"""`oomguard --version`: version, commit, kernel release and cgroup mode, for bug reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import oomguard
from oomguard.cli import main
from oomguard.monitor.kernel.mountinfo import parse_mountinfo
from oomguard.version_report import (
    COMMIT_ENV,
    cgroup_mode_of_mounts,
    cgroup_mode_of_sysfs,
    detect_cgroup_mode,
    git_commit,
)

REPO = Path(__file__).resolve().parents[2]
ROOTFS = b"22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
V2 = ROOTFS + b"30 22 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
V1 = (
    ROOTFS
    + b"31 22 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs ro,mode=755\n"
    + b"33 31 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
    + b"40 31 0:35 / /sys/fs/cgroup/memory rw shared:9 - cgroup cgroup rw,memory\n"
)
HYBRID = V1 + b"41 31 0:36 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw\n"


@pytest.mark.parametrize(
    ("mountinfo", "mode", "detail"),
    [
        (V2, "v2", "cgroup2 at /sys/fs/cgroup"),
        (HYBRID, "hybrid", "cgroup2 at /sys/fs/cgroup/unified, memory controller on v1"),
        (V1, "v1", "no cgroup2 mount"),
        (ROOTFS, "unknown", "no cgroup filesystem mounted"),
    ],
    ids=["v2", "hybrid", "v1", "none"],
)
def test_cgroup_mode_from_the_mount_table(mountinfo: bytes, mode: str, detail: str) -> None:
    found = cgroup_mode_of_mounts(parse_mountinfo(mountinfo))
    assert (found.mode, found.detail) == (mode, detail)


def test_hybrid_with_memory_on_cgroup2_says_so() -> None:
    no_memory_v1 = HYBRID.replace(b"rw,memory", b"rw,cpu")
    assert cgroup_mode_of_mounts(parse_mountinfo(no_memory_v1)).detail.endswith("on cgroup2")


@pytest.mark.parametrize(
    ("files", "mode"),
    [
        (["cgroup.controllers"], "v2"),
        (["unified/cgroup.controllers", "memory/tasks"], "hybrid"),
        (["memory/tasks"], "v1"),
        ([], "unknown"),
    ],
)
def test_cgroup_mode_from_sysfs_when_mountinfo_is_unreadable(
    tmp_path: Path, files: list[str], mode: str
) -> None:
    root = tmp_path / "cgroup"
    root.mkdir()
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    assert cgroup_mode_of_sysfs(root).mode == mode
    assert detect_cgroup_mode(tmp_path / "no-mountinfo", root).mode == mode


def test_mount_table_wins_over_sysfs(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_bytes(V1)
    (tmp_path / "cgroup.controllers").write_text("")  # sysfs would say v2
    assert detect_cgroup_mode(mountinfo, tmp_path).mode == "v1"


def test_commit_from_the_image_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COMMIT_ENV, "0123456789abcdef")
    assert git_commit() == "0123456789abcdef"


def test_commit_from_a_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(COMMIT_ENV, raising=False)
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    commit = git_commit(REPO)
    assert commit is not None and head.startswith(commit) and len(commit) == 12


def test_commit_unknown_outside_a_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv(COMMIT_ENV, raising=False)
    assert git_commit(tmp_path) is None


def test_version_flag_prints_every_field(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(COMMIT_ENV, "abc123")
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"oomguard {oomguard.__version__}"
    fields = dict(line.split(None, 1) for line in lines[1:])
    assert fields["commit"] == "abc123"
    assert fields["kernel"] == os.uname().release
    assert fields["cgroup"].split()[0] in {"v1", "hybrid", "v2", "unknown"}
    assert fields["cgroup"] == str(detect_cgroup_mode())


def test_version_needs_no_subcommand_in_a_fresh_process() -> None:
    """As the image's entry point runs it: `oomguard --version`, nothing else."""
    result = subprocess.run(
        [sys.executable, "-m", "oomguard", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"oomguard {oomguard.__version__}\ncommit ")


def test_image_build_carries_the_commit_to_version() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    final = dockerfile.rsplit("\nFROM ", 1)[1]
    assert 'ARG GIT_COMMIT=""' in final
    assert f"{COMMIT_ENV}=${{GIT_COMMIT}}" in final
    assert "oomguard --version" in dockerfile.split("\nFROM ")[1]  # the build stage runs it
    release = (REPO / ".github" / "workflows" / "release.yml").read_text()
    assert "build-args: GIT_COMMIT=${{ github.sha }}" in release
