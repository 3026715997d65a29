"""One agent per node: an exclusive ``flock`` on a file in the node's state directory.

The kernel drops the lock when the holder dies, however it dies (SIGKILL, OOM kill), so a
successor never waits on a stale lock; a second agent started while the first lives (a
second release, a manual run) gets ``NodeLockHeld`` naming the holder's pid.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_FILE = "agent.lock"


class NodeLockHeld(RuntimeError):
    """Another process holds the node's agent lock."""


class NodeLock:
    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, path: Path) -> NodeLock:
        """Take the lock at ``path`` without waiting; ``NodeLockHeld`` when another holds it,
        ``OSError`` when the file cannot be opened."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise NodeLockHeld(
                f"another oomguard agent guards this node: {path} is locked by pid {holder} "
                "(a second release or a manual run?); only one agent may guard a node"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None
