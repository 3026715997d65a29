"""A token bucket: at most N actions per minute, with a burst of N, on an injected clock.

Why a bucket and not a fixed window: a window lets 2N actions through around its edge; the
bucket refills continuously, so any 60 s span sees at most N + (burst already saved) actions.
Pure: the caller passes ``now`` (time.monotonic()), so the tests need no sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """``per_minute`` tokens refill evenly over a minute; the bucket holds at most ``burst``."""

    per_minute: float
    burst: int
    now: float
    _tokens: float = field(init=False)
    _updated: float = field(init=False)

    def __post_init__(self) -> None:
        if self.per_minute <= 0:
            raise ValueError(f"per_minute must be positive, got {self.per_minute}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {self.burst}")
        self._tokens = float(self.burst)
        self._updated = self.now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)  # a clock that steps back never adds tokens
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.per_minute / 60.0)
        self._updated = max(self._updated, now)

    def available(self, now: float) -> int:
        self._refill(now)
        return int(self._tokens + 1e-9)

    def try_take(self, now: float) -> bool:
        """Spend one token if there is one; False means the action must wait."""
        self._refill(now)
        if self._tokens + 1e-9 >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def seconds_until_next(self, now: float) -> float:
        """How long until ``try_take`` can succeed (0 when it can now)."""
        self._refill(now)
        missing = 1.0 - self._tokens
        return 0.0 if missing <= 1e-9 else missing * 60.0 / self.per_minute
