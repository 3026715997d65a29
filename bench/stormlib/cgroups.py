"""cgroup v2 helpers for the driver in the VM: write a file, read a flat-keyed one, list a
subtree's pids, start a process inside a cgroup, remove a subtree."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


def cg_write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def read_kv(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                out[key] = int(value)
    return out


def spawn_in(cgroup: Path, argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    procs = str(cgroup / "cgroup.procs")

    def enter() -> None:
        fd = os.open(procs, os.O_WRONLY)
        os.write(fd, b"0")
        os.close(fd)

    out = open(log, "ab")  # noqa: SIM115 - handed to the child, closed with us
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, preexec_fn=enter)


def remove_tree(cg: Path) -> None:
    if not cg.exists():
        return
    with contextlib.suppress(OSError):
        cg_write(cg / "cgroup.kill", "1")
    for _ in range(300):
        if not (cg / "cgroup.procs").exists() or not read_pids(cg):
            break
        time.sleep(0.01)
    for child in sorted(cg.rglob("*"), key=lambda p: -len(p.parts)):
        if child.is_dir():
            with contextlib.suppress(OSError):
                child.rmdir()
    with contextlib.suppress(OSError):
        cg.rmdir()


def read_pids(cg: Path) -> list[int]:
    """Every pid in ``cg``'s subtree; cgroups vanishing meanwhile are skipped."""
    pids: list[int] = []
    for top, _dirs, files in os.walk(cg):
        if "cgroup.procs" in files:
            with contextlib.suppress(OSError, ValueError):
                pids += [int(x) for x in Path(top, "cgroup.procs").read_text().split()]
    return pids
