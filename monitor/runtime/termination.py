"""Termination signals, either as an exception (every ``finally`` on the way out undoes
changes) or as a stop flag (a loop that checks it ends at its next wake-up)."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from oomguard.monitor.runtime.stop_signal import StopSignal


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
    way out runs (e.g. ``cgroupfs.memory_high_set`` restores memory.high). Only the
    first signal raises: later ones are ignored while the way out runs. The previous
    handlers come back on exit. Must be entered from the main thread (a Python rule
    for signal handlers).
    """
    raised: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        # once only: a second SIGTERM must not cut short the ``finally`` the first started
        if not raised:
            raised.append(signum)
            raise Terminated(signum)

    with _handlers(signums, handler):
        yield


@contextmanager
def signals_set_stop(
    stop: StopSignal,
    signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP),
) -> Iterator[list[int]]:
    """While active, the given signals set ``stop`` and are recorded in the list yielded.

    For a run whose every wait includes ``stop``: nothing is raised at an arbitrary point
    (a thread half started, a restore half done), the run ends at its next wake-up and
    undoes its changes in order. Must be entered from the main thread.
    """
    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()

    with _handlers(signums, handler):
        yield received


@contextmanager
def _handlers(
    signums: tuple[int, ...], handler: Callable[[int, FrameType | None], None]
) -> Iterator[None]:
    """``handler`` for ``signums`` while active; the previous handlers come back on exit."""
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
