"""The node agent's latest look at the node: the measurement, why the last one failed, when
the loop last stepped, and since when a step runs (which ``/healthz`` reads)."""

from __future__ import annotations

from oomguard.monitor.modes.node_measurer import Measurement


class NodeLook:
    def __init__(self) -> None:
        self.last: Measurement | None = None  # the last good measurement
        self.error: str | None = None  # why the last step could not measure, if it could not
        self.stepped_at: float | None = None
        self.step_began_at: float | None = None  # a step is running since then

    def began(self, now: float) -> None:
        self.step_began_at = now

    def ended(self) -> None:
        self.step_began_at = None

    def failed(self, now: float, error: str) -> str:
        """A step that could not measure; returns ``error``."""
        self.stepped_at, self.error = now, error
        return error

    def saw(self, now: float, m: Measurement) -> None:
        self.stepped_at, self.error, self.last = now, None, m

    def healthy(self, now: float, tick_seconds: float) -> tuple[bool, str]:
        """Live unless a step has been running for long (five ticks, at least 10 s). An idle
        loop takes no steps at all (no timer without a polled monitor), so the time since
        the last step says nothing."""
        began = self.step_began_at
        if began is None:
            return True, "starting" if self.stepped_at is None else "ok"
        running = now - began
        limit = max(10.0, 5 * tick_seconds)
        return running < limit, f"a loop step has run for {running:.1f}s"
