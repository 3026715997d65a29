"""Exponential backoff with a cap, for reconnecting watches and retrying API calls.

Pure and deterministic by default so tests can assert the delays. Watches use full jitter
(each delay drawn uniformly below the exponential one): an apiserver restart breaks every
node agent's watches at the same instant, and thousands of agents retrying and relisting on
one schedule would arrive together, in waves, again and again.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.0  # fraction of the delay added at random, 0 = deterministic
    full_jitter: bool = False  # draw each delay uniformly from [0, delay) instead
    rng: Callable[[], float] = field(default=random.random, repr=False)  # [0, 1)
    _next: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError(f"invalid backoff {self}")
        if self.full_jitter and self.jitter:
            raise ValueError("full_jitter and jitter exclude each other")
        self._next = self.initial

    def next_delay(self) -> float:
        """The delay to wait now; the following one grows by ``factor`` up to ``maximum``."""
        delay = self._next
        self._next = min(self.maximum, self._next * self.factor)
        if self.full_jitter:
            return delay * self.rng()
        if self.jitter:
            delay += delay * self.jitter * self.rng()
        return delay

    def reset(self) -> None:
        """After a success: the next failure waits ``initial`` again."""
        self._next = self.initial


def watch_retry_backoff() -> Backoff:
    """Reconnecting after a failed list or watch: spread over 0.5 s, then 1 s, ... 30 s."""
    return Backoff(initial=0.5, maximum=30.0, full_jitter=True)


def relist_backoff() -> Backoff:
    """Relisting after ``410 Gone``: after an apiserver restart every agent's resourceVersion
    is too old at once, so the first relists spread over 2 s, repeated ones over up to 60 s
    (the map already held keeps guarding meanwhile)."""
    return Backoff(initial=2.0, maximum=60.0, full_jitter=True)
