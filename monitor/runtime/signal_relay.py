"""Termination signals for a process that runs a command: recorded during set-up, forwarded
to the command once it runs, so the command's exit (not the signal) ends the run and every
change is undone on the way out."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from types import FrameType

from oomguard.monitor.runtime.stop_signal import StopSignal

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class SignalRelay:
    """SIGTERM/SIGINT/SIGHUP handling for the whole run.

    Before the command exists a signal is only recorded (set-up then stops and undoes);
    afterwards it is forwarded to the command, whose exit ends the run. A terminal's Ctrl-C
    already reaches the command (same foreground process group), so SIGINT is not forwarded
    a second time when we are in the terminal's foreground. ``stop`` (guarding an existing
    cgroup) is set on any of them.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self.stop = StopSignal()
        self._child: subprocess.Popen[bytes] | None = None

    @classmethod
    @contextlib.contextmanager
    def installed(cls) -> Iterator[SignalRelay]:
        relay = cls()
        previous = {s: signal.signal(s, relay._handle) for s in FORWARDED_SIGNALS}
        try:
            yield relay
        finally:
            for s, old in previous.items():
                signal.signal(s, old)
            relay.stop.close()

    def forward_to(self, child: subprocess.Popen[bytes]) -> None:
        self._child = child

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)
        self.stop.set()
        child = self._child
        if child is None or (signum == signal.SIGINT and _in_terminal_foreground()):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signum)


def _in_terminal_foreground() -> bool:
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):  # no terminal, closed or missing stdin
        return False
