"""Whether the loop has taken a monitor's last trigger: an eventfd the monitor polls on.

A monitor that sent a trigger has nothing new to say until the loop has taken it (one
decision answers everything that arrived meanwhile), so it stops reading its kernel file
and sleeps on this instead; the loop marks the trigger consumed when it hands it to a step
(``Trigger.on_consumed``), and the monitor reads once more: everything that happened while
it slept arrives as one trigger. Safe to mark from any thread, even after the monitor has
closed it (then it does nothing).
"""

from __future__ import annotations

import contextlib
import os
import threading


class Consumption:
    def __init__(self) -> None:
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._lock = threading.Lock()
        self._closed = False

    def fileno(self) -> int:
        return self._fd

    def consumed(self) -> None:
        """The loop took the trigger (called from the loop's thread)."""
        with self._lock:
            if not self._closed:
                os.eventfd_write(self._fd, 1)

    def reset(self) -> None:
        """Before the next trigger: make the fd unreadable again."""
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._fd)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._fd)
