"""The cluster-wide cap on the node agents' evictions: at most ``max_evictions`` allowed in
any ``window_seconds``, whichever nodes ask. A bad rollout of settings then evicts a few
pods a minute across the cluster, not every pod on every node at once.

Pure, on an injected clock: ``admit`` counts an eviction it lets through and says how long
to wait when the window is full. Each webhook replica counts its own share.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field


@dataclass
class EvictionCap:
    max_evictions: int  # in any window; 0: no cap
    window_seconds: float
    _admitted: collections.deque[float] = field(default_factory=collections.deque)

    def __post_init__(self) -> None:
        if self.max_evictions < 0 or self.window_seconds <= 0:
            raise ValueError(
                f"a cap needs max_evictions >= 0 and a positive window, got "
                f"{self.max_evictions} in {self.window_seconds}s"
            )

    def admit(self, now: float) -> int | None:
        """None: admitted and counted. Else the whole seconds until the window has room."""
        if self.max_evictions == 0:
            return None
        while self._admitted and self._admitted[0] <= now - self.window_seconds:
            self._admitted.popleft()
        if len(self._admitted) < self.max_evictions:
            self._admitted.append(now)
            return None
        return max(1, math.ceil(self._admitted[0] + self.window_seconds - now))
