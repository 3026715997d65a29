"""The node agent's latest look at the node: the measurement, why the last one failed, and
when the loop last stepped (which ``/healthz`` reads)."""

from __future__ import annotations

from oomguard.monitor.modes.node_measurer import Measurement


class NodeLook:
    def __init__(self) -> None:
        self.last: Measurement | None = None  # the last good measurement
        self.error: str | None = None  # why the last step could not measure, if it could not
        self.stepped_at: float | None = None

    def failed(self, now: float, error: str) -> str:
        """A step that could not measure; returns ``error``."""
        self.stepped_at, self.error = now, error
        return error

    def saw(self, now: float, m: Measurement) -> None:
        self.stepped_at, self.error, self.last = now, None, m

    def healthy(self, now: float, tick_seconds: float) -> tuple[bool, str]:
        """Live while the loop keeps stepping (at least every few ticks)."""
        if self.stepped_at is None:
            return True, "starting"
        late = now - self.stepped_at
        limit = max(10.0, 5 * tick_seconds)
        return late < limit, f"no loop step for {late:.1f}s"
