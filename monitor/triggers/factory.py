"""Build the monitors a configuration asks for, and run them side by side.

The monitors compose by configuration, one per kind the config names
(``monitor_registry.MONITOR_KINDS``: e.g. the event monitor, fast, on counters of the
guarded cgroup; the threshold monitor, polled usage; the pressure monitor, kernel-measured
stalls). :class:`MonitorRunner` runs
each in its own thread and funnels everything into one queue, so the consumer
(the decision loop) blocks on a single ``queue.get``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from oomguard.monitor.runtime.stop_signal import StopSignal

# where callers have always found them: the configs, and building monitors from them
from oomguard.monitor.triggers.monitor_config import MonitorConfig as MonitorConfig
from oomguard.monitor.triggers.monitor_config import ThresholdConfig as ThresholdConfig
from oomguard.monitor.triggers.monitor_config import UsageScope as UsageScope
from oomguard.monitor.triggers.monitor_registry import build_monitors as build_monitors
from oomguard.monitor.triggers.trigger import Monitor, MonitorError, Trigger


@dataclass(frozen=True)
class MonitorFailure:
    """A monitor stopped on its own; ``error`` says why (a MonitorError, or a bug)."""

    monitor: str
    error: BaseException
    detected_at: float


MonitorOutput = Trigger | MonitorFailure


class MonitorRunner:
    """Runs monitors in daemon threads; triggers and failures arrive on ``output``.

    A failing monitor does not stop the others: the consumer sees a
    :class:`MonitorFailure` and decides (the guard usually exits with an error).
    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        monitors: Sequence[Monitor],
        output: queue.Queue[MonitorOutput] | None = None,
    ) -> None:
        self.monitors = list(monitors)
        self.output: queue.Queue[MonitorOutput] = output if output is not None else queue.Queue()
        self._stop = StopSignal()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("MonitorRunner already started")
        for monitor in self.monitors:
            thread = threading.Thread(
                target=self._run_one, args=(monitor,), name=f"monitor-{monitor.name}", daemon=True
            )
            thread.start()
            # only a started thread is kept: a signal raising in start() leaves none to join
            self._threads.append(thread)

    def _run_one(self, monitor: Monitor) -> None:
        try:
            monitor.run(self.output.put, self._stop)
        except BaseException as exc:  # surfaced to the consumer, never lost in a thread
            self.output.put(MonitorFailure(monitor.name, exc, time.monotonic()))
            return
        if not self._stop.is_set():
            error = MonitorError(f"monitor {monitor.name} returned without being stopped")
            self.output.put(MonitorFailure(monitor.name, error, time.monotonic()))

    def stop(self, timeout: float = 1.0) -> list[str]:
        """Signal every monitor and wait up to ``timeout`` seconds in total.

        Returns the names of monitors still running (empty when all stopped). The
        StopSignal is released only when every thread has finished.
        """
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name.removeprefix("monitor-") for t in self._threads if t.is_alive()]
        if not alive and not self._closed:
            self._closed = True
            self._stop.close()
        return alive

    def __enter__(self) -> MonitorRunner:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
