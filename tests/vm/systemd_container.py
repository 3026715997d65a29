"""A real systemd (Debian's 252, the host's, so also the guest's) as PID 1 of its own PID,
mount and cgroup namespaces inside the VM, the way ``systemd-nspawn`` runs a container.

Booting the whole VM with systemd as init is not needed to test what oomguard asks of
systemd (``SetUnitProperties`` on ``kubepods.slice`` and what systemd then writes to
cgroupfs), and virtme-ng's ``--systemd`` did not come up here (ENVIRONMENT.md). Instead, in
the ordinary guest:

1. a cgroup ``/sys/fs/cgroup/<name>`` is made; it becomes systemd's whole hierarchy (its
   cgroup namespace root), so the memory controller the guest enabled is there for it;
2. ``unshare --pid --fork --mount --mount-proc`` starts a shell that is PID 1 of a new PID
   namespace; it moves itself (alone: the ``unshare`` parent stays outside, so the
   subtree root has no other process) into that cgroup, enters a new cgroup namespace
   there, mounts a fresh cgroup2 (rooted at it) and a tmpfs on ``/run``, and execs systemd
   with ``container=oomguard``;
3. systemd loads units only from a private directory (``SYSTEMD_UNIT_PATH``) and runs no
   generators: over 9p under software emulation, Debian's whole unit set and generators
   took minutes. Slices (``kubepods.slice``, ``system.slice``) need no unit file.

Commands run inside with ``nsenter`` (``systemctl``, ``systemd-run``: they talk to systemd on
``/run/systemd/private``); from outside, the guest sees systemd's cgroups under
``/sys/fs/cgroup/<name>`` and its files under ``/proc/<pid>/root``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
SYSTEMD = Path("/lib/systemd/systemd")
CONTAINER = "oomguard"  # $container: systemd knows it is not the host's init
UNIT_DIR = "/run/oomguard-units"
EMPTY_DIR = "/run/oomguard-empty"
RUNTIME_CONTROL_DIR = "/run/systemd/system.control"
TRANSIENT_DIR = "/run/systemd/transient"
TARGET = "oomguard.target"
PRIVATE_SOCKET = "/run/systemd/private"
DEFAULT_START_TIMEOUT = 300.0
# The only unit files: our default target, and the empty targets every service's default
# dependencies name (Requires=sysinit.target, After=basic.target, Conflicts=shutdown.target).
UNITS = {
    TARGET: "oomguard tests: the manager and what tests start",
    "sysinit.target": "System Initialization (empty)",
    "basic.target": "Basic System (empty)",
    "shutdown.target": "System Shutdown (empty)",
}
SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket"


class SystemdContainerError(RuntimeError):
    """systemd did not come up, or a command inside failed."""


def pid1_script(cgroup: Path) -> str:
    """What PID 1 of the new PID namespace runs before it becomes systemd (``sh -c``)."""
    env = {
        "container": CONTAINER,
        # where `set-property --runtime`/SetUnitProperties(runtime) drop-ins and transient
        # units (the kubelet's slices) live, then ours: without the first two a
        # daemon-reload forgets every runtime property (seen: MemoryHigh= back to infinity)
        "SYSTEMD_UNIT_PATH": f"{RUNTIME_CONTROL_DIR}:{TRANSIENT_DIR}:{UNIT_DIR}",
        "SYSTEMD_GENERATOR_PATH": EMPTY_DIR,
        "SYSTEMD_ENVIRONMENT_GENERATOR_PATH": EMPTY_DIR,
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    }
    steps = [
        "set -e",
        f"echo $$ > {shlex.quote(str(cgroup / 'cgroup.procs'))}",
        # a cgroup namespace rooted where we now are; then a cgroup2 mount that shows it
        # (the guest's mount is the same superblock: mounting over it is refused, EBUSY)
        "exec unshare --cgroup -- sh -c " + shlex.quote(_inner_script(env)),
    ]
    return "\n".join(steps)


def _inner_script(env: dict[str, str]) -> str:
    assignments = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
    units = [
        f"printf '[Unit]\\nDescription={description}\\n' > {UNIT_DIR}/{name}"
        for name, description in UNITS.items()
    ]
    return "\n".join(
        [
            "set -e",
            f"umount -l {CGROUP_ROOT}",
            f"mount -t cgroup2 -o nsdelegate cgroup2 {CGROUP_ROOT}",
            "mount -t tmpfs -o mode=755 tmpfs /run",
            f"mkdir -p {UNIT_DIR} {EMPTY_DIR}",
            *units,
            f"exec env -i {assignments} {SYSTEMD} --unit={TARGET} --log-target=kmsg "
            "--show-status=no",
        ]
    )


def launch_command(cgroup: Path) -> list[str]:
    return [
        "unshare",
        "--pid",
        "--fork",
        "--kill-child",  # the namespace (systemd and all it started) ends with unshare
        "--mount",
        "--mount-proc",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        pid1_script(cgroup),
    ]


def nsenter_command(pid: int, argv: Sequence[str]) -> list[str]:
    """``argv`` in systemd's mount, PID and cgroup namespaces (its /run, its cgroup view)."""
    return ["nsenter", "-t", str(pid), "-m", "-p", "-C", "--", *argv]


def first_child(children_text: str) -> int | None:
    """The first PID in a ``/proc/<pid>/task/<pid>/children`` file, or None."""
    fields = children_text.split()
    return int(fields[0]) if fields else None


@dataclass
class SystemdContainer:
    """A running systemd; ``cgroup`` is its hierarchy's root as the guest sees it."""

    process: subprocess.Popen[bytes]
    pid: int
    cgroup: Path

    @property
    def private_socket(self) -> Path:
        """systemd's own D-Bus socket, reachable from outside its mount namespace."""
        return Path(f"/proc/{self.pid}/root{PRIVATE_SOCKET}")

    def run(
        self, *argv: str, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` inside (as root); raises SystemdContainerError when ``check`` and it fails."""
        completed = subprocess.run(
            nsenter_command(self.pid, argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and completed.returncode != 0:
            raise SystemdContainerError(
                f"{shlex.join(argv)} exited {completed.returncode}: "
                f"{completed.stderr.strip() or completed.stdout.strip()}"
            )
        return completed

    def systemctl(self, *args: str, check: bool = True) -> str:
        return self.run("systemctl", "--no-pager", *args, check=check).stdout

    @property
    def system_bus_socket(self) -> Path:
        """The system bus (after :meth:`start_system_bus`), reachable from outside."""
        return Path(f"/proc/{self.pid}/root{SYSTEM_BUS_SOCKET}")

    def start_system_bus(self, timeout: float = 120.0) -> Path:
        """Debian's own ``dbus.socket`` and ``dbus.service`` (copied from the host's
        /lib/systemd/system), started, with systemd on the bus as
        ``org.freedesktop.systemd1``; returns the socket's path from outside.

        systemd joins the system bus only once both units run (as on a booted node). A
        client outside systemd's PID namespace (a pod without ``hostPID``) must come this
        way: systemd refuses such peers on its private socket ("unprivileged client")."""
        units = Path(f"/proc/{self.pid}/root{UNIT_DIR}")
        for name in ("dbus.socket", "dbus.service"):
            shutil.copyfile(Path("/lib/systemd/system") / name, units / name)
        self.systemctl("daemon-reload")
        self.systemctl("start", "dbus.socket", "dbus.service")
        deadline = time.monotonic() + timeout
        poked = False
        while not self._on_the_bus():
            if time.monotonic() > deadline:
                status = self.systemctl("status", "dbus.socket", "dbus.service", check=False)
                raise SystemdContainerError(
                    f"systemd not on the system bus after {timeout} s:\n{status}"
                )
            if not poked:  # SIGUSR1: systemd reconnects to the bus if its units run
                os.kill(self.pid, signal.SIGUSR1)
                poked = True
            time.sleep(0.1)
        return self.system_bus_socket

    def _on_the_bus(self) -> bool:
        completed = self.run(
            "busctl", "--system", "status", "org.freedesktop.systemd1", check=False
        )
        return completed.returncode == 0

    def stop(self, timeout: float = 60.0) -> None:
        """Kill the namespace (its PID 1 first: the kernel then kills everything in it) and
        remove the cgroups systemd made. A test bed ends nothing gracefully."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()  # unshare --kill-child: its PID 1 gets SIGKILL
            self.process.wait(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                _remove_tree(self.cgroup)
                return
            except OSError:  # a process not yet reaped still holds a cgroup
                if time.monotonic() > deadline or not self.cgroup.exists():
                    return
                time.sleep(0.1)


def _remove_tree(cgroup: Path) -> None:
    """Remove a cgroup subtree bottom-up (cgroup directories go with rmdir only)."""
    for child in sorted((p for p in cgroup.rglob("*") if p.is_dir()), reverse=True):
        with contextlib.suppress(OSError):
            child.rmdir()
    cgroup.rmdir()


def start(
    name: str = "oomguard-systemd",
    *,
    timeout: float = DEFAULT_START_TIMEOUT,
    log: Path | None = None,
) -> SystemdContainer:
    """Start systemd in its own namespaces on ``/sys/fs/cgroup/<name>``; returns once the
    manager answers and has finished starting up (``is-system-running --wait``)."""
    for tool in ("unshare", "nsenter", "systemctl"):
        if shutil.which(tool) is None:
            raise SystemdContainerError(f"{tool} is missing")
    if not SYSTEMD.exists():
        raise SystemdContainerError(f"{SYSTEMD} is missing (Debian's systemd package)")
    cgroup = CGROUP_ROOT / name
    cgroup.mkdir()
    output = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        process = subprocess.Popen(
            launch_command(cgroup), stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    finally:
        if log is not None and not isinstance(output, int):
            output.close()
    deadline = time.monotonic() + timeout
    pid = None
    container: SystemdContainer | None = None
    try:
        while container is None:
            if process.poll() is not None:
                raise SystemdContainerError(
                    f"systemd's namespace ended early (exit {process.returncode})"
                    + (f"; see {log}" if log is not None else "")
                )
            if pid is None:
                with contextlib.suppress(OSError):
                    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
                    pid = first_child(children.read_text())
            if pid is not None and Path(f"/proc/{pid}/root{PRIVATE_SOCKET}").is_socket():
                container = SystemdContainer(process, pid, cgroup)
                break
            if time.monotonic() > deadline:
                raise SystemdContainerError(f"systemd did not open {PRIVATE_SOCKET} in {timeout} s")
            time.sleep(0.05)
        remaining = max(1.0, deadline - time.monotonic())
        state = container.run(
            "systemctl", "is-system-running", "--wait", check=False, timeout=remaining
        ).stdout.strip()
        if state not in ("running", "degraded"):
            raise SystemdContainerError(f"systemd came up {state!r}")
    except BaseException:
        if container is not None:
            container.stop()
        else:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
            with contextlib.suppress(OSError):
                _remove_tree(cgroup)
        raise
    return container


@contextlib.contextmanager
def running_systemd(name: str = "oomguard-systemd", **kwargs: object) -> Iterator[SystemdContainer]:
    container = start(name, **kwargs)  # type: ignore[arg-type]
    try:
        yield container
    finally:
        container.stop()
