"""Exponential backoff with a cap, for reconnecting watches and retrying API calls.

Pure and deterministic (no jitter by default) so tests can assert the delays; one agent per
node means no thundering herd to spread out beyond what the optional jitter gives.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.0  # fraction of the delay added at random, 0 = deterministic
    _next: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError(f"invalid backoff {self}")
        self._next = self.initial

    def next_delay(self) -> float:
        """The delay to wait now; the following one grows by ``factor`` up to ``maximum``."""
        delay = self._next
        self._next = min(self.maximum, self._next * self.factor)
        if self.jitter:
            delay += delay * self.jitter * random.random()  # noqa: S311 - not cryptographic
        return delay

    def reset(self) -> None:
        """After a success: the next failure waits ``initial`` again."""
        self._next = self.initial
