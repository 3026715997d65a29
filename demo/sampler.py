"""Samples a cgroup's ``memory.current`` every 10 ms in a thread (wall-clock times)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

INTERVAL = 0.01


class Sampler(threading.Thread):
    def __init__(self, cgroup: Path, interval: float = INTERVAL) -> None:
        super().__init__(name="memory-sampler", daemon=True)
        self._file = cgroup / "memory.current"
        self._interval = interval
        self._stop_event = threading.Event()
        self.samples: list[tuple[float, int]] = []

    def run(self) -> None:
        while True:
            self.sample()
            if self._stop_event.wait(self._interval):
                return

    def sample(self) -> None:
        """One reading; none while the cgroup is missing or mid-removal."""
        try:
            value = int(self._file.read_text())
        except (OSError, ValueError):
            return
        self.samples.append((time.time(), value))

    def stop(self) -> list[tuple[float, int]]:
        self._stop_event.set()
        self.join()
        return self.samples
