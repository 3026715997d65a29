"""The pure parts of the systemd test bed (tests/vm/systemd_container.py); the bed itself
runs in tests/monitor/systemd/test_systemd_kernel.py (marker ``kernel``)."""

import shlex
from pathlib import Path

from systemd_container import (
    SYSTEMD,
    TARGET,
    UNITS,
    first_child,
    launch_command,
    nsenter_command,
    pid1_script,
)

CGROUP = Path("/sys/fs/cgroup/oomguard-systemd")


def test_launch_is_a_new_pid_and_mount_namespace_that_dies_with_its_parent() -> None:
    argv = launch_command(CGROUP)
    options = argv[: argv.index("--")]
    assert options[0] == "unshare"
    for flag in ("--pid", "--fork", "--kill-child", "--mount", "--mount-proc"):
        assert flag in options
    assert argv[argv.index("--") + 1 : -1] == ["sh", "-c"]
    assert argv[-1] == pid1_script(CGROUP)


def test_pid1_joins_the_cgroup_before_its_cgroup_namespace_is_made() -> None:
    lines = pid1_script(CGROUP).splitlines()
    join = lines.index(f"echo $$ > {CGROUP}/cgroup.procs")
    enter = next(i for i, line in enumerate(lines) if line.startswith("exec unshare --cgroup"))
    assert lines[0] == "set -e"
    assert join < enter


def test_systemd_starts_on_our_units_only_with_a_fresh_cgroup2_and_run() -> None:
    script = pid1_script(CGROUP)
    prefix = "exec unshare --cgroup -- sh -c "
    inner = shlex.split(script[script.index(prefix) + len(prefix) :])[0]
    steps = inner.splitlines()
    assert steps.index("umount -l /sys/fs/cgroup") < steps.index(
        "mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup"
    )
    assert "mount -t tmpfs -o mode=755 tmpfs /run" in steps
    for name in UNITS:
        assert any(step.endswith(f"> /run/oomguard-units/{name}") for step in steps)
    last = shlex.split(steps[-1])
    assert last[:3] == ["exec", "env", "-i"]
    assert "container=oomguard" in last
    # runtime drop-ins and transient units survive a daemon-reload only on the path
    unit_path = "/run/systemd/system.control:/run/systemd/transient:/run/oomguard-units"
    assert f"SYSTEMD_UNIT_PATH={unit_path}" in last
    assert "SYSTEMD_GENERATOR_PATH=/run/oomguard-empty" in last
    assert last[last.index(str(SYSTEMD)) + 1] == f"--unit={TARGET}"


def test_nsenter_enters_mount_pid_and_cgroup_namespaces() -> None:
    assert nsenter_command(42, ["systemctl", "daemon-reload"]) == [
        "nsenter", "-t", "42", "-m", "-p", "-C", "--", "systemctl", "daemon-reload",
    ]  # fmt: skip


def test_first_child() -> None:
    assert first_child("259 300 \n") == 259
    assert first_child("") is None
