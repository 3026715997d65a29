"""The node's daemons (containerd, the kubelet) as services of the systemd in the VM
(``tests/vm/systemd_container.py``), so that systemd is their manager as on a node whose
kubelet uses the systemd cgroup driver: the kubelet makes ``kubepods.slice`` through
systemd's D-Bus API, runc puts containers in scopes, and ``systemctl restart kubelet``
restarts the kubelet the way an administrator or a package upgrade does.

Each service is a unit file in the container's unit directory (not ``systemd-run``): a
``daemon-reload`` keeps it, and a restart runs the same command line again. Its output goes
to ``<log_dir>/<name>.log``, beside the node bed's other logs.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from systemd_container import UNIT_DIR, SystemdContainer


class ServiceError(RuntimeError):
    """A service did not start, or stopped (the message has its log's tail)."""


def unit_text(
    name: str,
    argv: Sequence[str],
    log: Path,
    env: Mapping[str, str],
    properties: Sequence[str],
) -> str:
    """A ``[Service]`` unit running ``argv`` with its output appended to ``log``."""
    lines = [
        "[Unit]",
        f"Description=oomguard node bed: {name}",
        "[Service]",
        f"ExecStart={shlex.join(argv)}",
        *(f'Environment="{key}={value}"' for key, value in env.items()),
        f"StandardOutput=append:{log}",
        "StandardError=inherit",
        "LimitNOFILE=1048576",
        *properties,
    ]
    return "\n".join(lines) + "\n"


class SystemdServices:
    """Services started in one systemd container; named like the node bed's processes."""

    def __init__(self, systemd: SystemdContainer, log_dir: Path) -> None:
        self.systemd = systemd
        self.log_dir = log_dir
        self.names: list[str] = []
        self._checked = 0.0

    def unit(self, name: str) -> str:
        return f"{name}.service"

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        properties: Sequence[str] = (),
    ) -> None:
        units = Path(f"/proc/{self.systemd.pid}/root{UNIT_DIR}")
        text = unit_text(name, argv, self.log_dir / f"{name}.log", env or {}, properties)
        (units / self.unit(name)).write_text(text)
        self.systemd.systemctl("daemon-reload")
        self.systemd.systemctl("start", "--no-block", self.unit(name))
        self.names.append(name)

    def restart(self, name: str) -> None:
        """``systemctl restart``: returns once the new process has been started."""
        self.systemd.systemctl("restart", self.unit(name))

    def main_pid(self, name: str) -> int:
        """The service's process as seen from inside systemd's PID namespace (0: none)."""
        shown = self.systemd.systemctl("show", "-p", "MainPID", "--value", self.unit(name))
        return int(shown.strip() or 0)

    def check_alive(self, every: float = 5.0) -> None:
        """Raise ServiceError if a service stopped; asks systemd at most once per ``every``
        seconds (each question is two processes, costly under emulation)."""
        if time.monotonic() - self._checked < every:
            return
        self._checked = time.monotonic()
        for name in self.names:
            state = self.systemd.systemctl("is-active", self.unit(name), check=False).strip()
            if state not in ("active", "activating", "reloading"):
                raise ServiceError(f"{self.unit(name)} is {state}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        try:
            text = (self.log_dir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
