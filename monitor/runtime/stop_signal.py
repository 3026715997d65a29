"""A stop flag that blocking monitors can poll() on, so shutdown never waits for a timeout."""

from __future__ import annotations

import os
import threading
import time


class StopSignal:
    """An eventfd: readable once ``set()`` is called; include ``fileno()`` in every poll set."""

    def __init__(self) -> None:
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._event = threading.Event()

    def fileno(self) -> int:
        return self._fd

    def set(self) -> None:
        if not self._event.is_set():
            self._event.set()
            os.eventfd_write(self._fd, 1)

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds; True as soon as the signal is set."""
        return self._event.wait(timeout)

    def wait_for(self, event: threading.Event, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for ``event``, giving up as soon as this is set;
        True only when ``event`` was set."""
        deadline = time.monotonic() + timeout
        while not self.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return event.is_set()
            if event.wait(min(remaining, 0.1)):
                return True
        return False

    def close(self) -> None:
        os.close(self._fd)
