"""Termination signals as an exception, so every ``finally`` on the way out undoes changes."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(BaseException):
    """Raised in the main thread when a handled termination signal arrives.

    A ``BaseException`` (like ``KeyboardInterrupt``) so ``except Exception`` blocks
    don't swallow it on its way to the ``finally`` that restores state.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")

    @property
    def exit_status(self) -> int:
        """The shell convention for "killed by signal N": 128 + N."""
        return 128 + self.signum


@contextmanager
def signals_raise_terminated(
    signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP),
) -> Iterator[None]:
    """While active, the given signals raise :class:`Terminated` in the main thread.

    This turns ``kill PID`` into an exception so every ``finally``/``with`` on the
    way out runs (e.g. ``cgroupfs.memory_high_set`` restores memory.high). The previous
    handlers come back on exit. Must be entered from the main thread (a Python rule
    for signal handlers).
    """

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Terminated(signum)

    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
