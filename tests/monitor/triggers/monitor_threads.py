"""A monitor running in its own thread, and the conditions tests wait on instead of sleeping.

A monitor is *armed* once it has read its baseline and blocks in ``poll()``: from then on
every change to its file wakes it. Tests that change the file earlier race the monitor's
start-up (a write before the baseline read is taken as the baseline and never triggers), so
they wait for :meth:`Running.wait_armed` first. Both conditions are facts, not durations:

* the baseline read: :class:`ObservedCgroup` records every ``memory.events`` read;
* blocked in ``poll()``: the thread's current system call, from ``/proc/self/task``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from monitor_fakes import wait_for

from oomguard.monitor.kernel.cgroupfs import Cgroup
from oomguard.monitor.kernel.memory_events import MemoryEvents
from oomguard.monitor.triggers.stop_signal import StopSignal
from oomguard.monitor.triggers.trigger import Monitor, Trigger

# poll(2) and ppoll(2) on x86_64, ppoll(2) on arm64 (which has no poll)
_POLL_SYSCALLS = {"7", "271", "73"}


def blocked_in_poll(thread: threading.Thread) -> bool:
    """Whether ``thread`` (of this process) sleeps in poll() right now."""
    tid = thread.native_id
    if tid is None:
        return False
    try:
        syscall = Path(f"/proc/self/task/{tid}/syscall").read_text().split()
    except OSError:  # the thread ended
        return False
    return bool(syscall) and syscall[0] in _POLL_SYSCALLS


class ObservedCgroup(Cgroup):
    """A :class:`Cgroup` that records every ``memory.events`` it reads, so a test can wait
    until the monitor has read its baseline, or has seen a value the test wrote."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(path)
        self.reads: list[MemoryEvents] = []

    def memory_events(self) -> MemoryEvents:
        events = super().memory_events()
        self.reads.append(events)
        return events

    def has_read(self, **counters: int) -> bool:
        """Whether some read had all of ``counters`` at these values."""
        return any(
            all(read.counters.get(k) == v for k, v in counters.items()) for read in self.reads
        )


class Running:
    """A monitor in a thread: the triggers it sent (in order) and the exception it ended with.

    With ``consume`` (the default) every trigger is taken at once, as a loop that is never
    busy would (:meth:`Trigger.consumed`); without it the test takes them (:meth:`consume`).
    """

    def __init__(self, monitor: Monitor, consume: bool = True) -> None:
        self.monitor = monitor
        self.consume_at_once = consume
        self.stop = StopSignal()
        self.triggers: list[Trigger] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.monitor.run(self._sink, self.stop)
        except BaseException as exc:
            self.error = exc

    def _sink(self, trigger: Trigger) -> None:
        self.triggers.append(trigger)
        if self.consume_at_once:
            trigger.consumed()

    def consume(self) -> None:
        """Take every trigger so far (as the loop does when a step starts)."""
        for trigger in list(self.triggers):
            trigger.consumed()

    def wait_armed(self, timeout: float = 60.0) -> None:
        """Block until the monitor sleeps in poll(): its watches, baseline or PSI trigger
        are in place, so whatever the test does next is seen."""
        assert wait_for(
            lambda: blocked_in_poll(self.thread) or not self.thread.is_alive(), timeout
        ), f"{self.monitor.name} monitor never reached poll() within {timeout} s"
        assert self.thread.is_alive(), f"{self.monitor.name} monitor ended: {self.error!r}"

    def wait_for(self, predicate: Callable[[], object], timeout: float = 60.0) -> bool:
        return wait_for(predicate, timeout)

    def shutdown(self) -> float:
        """Set the stop signal and wait for the thread; the seconds that took. The monitors
        poll with no timeout, so the thread ends only if the signal woke it."""
        started = time.monotonic()
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the monitor did not wake on its stop signal"
        elapsed = time.monotonic() - started
        print(f"stopped {elapsed * 1000:.1f} ms after the signal")
        self.stop.close()
        return elapsed
