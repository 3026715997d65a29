"""A pollable "something changed" flag: an eventfd that one thread raises and another sleeps on.

The waiter puts ``fileno()`` in its poll set next to the stop signal and wakes only when told,
so a reporter or a monitor costs nothing while nothing happens. Raising it many times before
the waiter looks is one wake-up. Safe to raise from any thread, even after ``close()`` (then
it does nothing): a late step of a stopping agent must not fail on a closed fd.
"""

from __future__ import annotations

import os
import threading


class ChangeNotice:
    def __init__(self) -> None:
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._lock = threading.Lock()
        self._closed = False

    def fileno(self) -> int:
        return self._fd

    def notify(self) -> None:
        """Make the fd readable (it stays so until ``reset``)."""
        with self._lock:
            if not self._closed:
                os.eventfd_write(self._fd, 1)

    def reset(self) -> bool:
        """Make the fd unreadable again; True when it had been raised since the last reset."""
        with self._lock:
            if self._closed:
                return False
            try:
                os.eventfd_read(self._fd)
            except BlockingIOError:
                return False
            return True

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._fd)
