"""Waiting for the guarded command: the kernel wakes the wait (pidfd, signal), never a timer.

A recording poller stands in for ``select.poll`` and keeps every timeout the wait passed;
the real command and the real pidfd do the rest, so no assertion depends on timing.
"""

from __future__ import annotations

import signal
import subprocess
import sys

from monitor_fakes import RecordingPoller

from oomguard.monitor.modes.guarded_command import wait_for_command
from oomguard.monitor.runtime.stop_signal import StopSignal


class FakeCgroup:
    def __init__(self, child: subprocess.Popen[bytes]) -> None:
        self.child = child
        self.killed = 0

    def kill(self) -> None:
        self.killed += 1
        self.child.kill()


def python(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)


def test_the_wait_has_no_timeout_and_ends_when_the_command_exits():
    child = python("import sys; sys.stdin.read(); sys.exit(3)")
    pollers: list[RecordingPoller] = []

    def poller() -> RecordingPoller:
        pollers.append(RecordingPoller())
        return pollers[-1]

    stop = StopSignal()
    assert child.stdin is not None
    child.stdin.close()  # the command ends on its own; the pidfd wakes the wait
    status = wait_for_command(child, [], stop, 5.0, FakeCgroup(child), poller=poller)
    assert status == 3
    assert pollers[0].timeouts and set(pollers[0].timeouts) == {None}
    stop.close()


def test_a_signal_ignored_past_the_grace_kills_the_cgroup_then_waits_without_timeout():
    child = python(
        "import signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); sys.stdin.read()"
    )
    pollers: list[RecordingPoller] = []

    def poller() -> RecordingPoller:
        pollers.append(RecordingPoller())
        return pollers[-1]

    stop, received = StopSignal(), [signal.SIGTERM]
    stop.set()  # what the relay does on a signal (it also forwards it: ignored here)
    cgroup = FakeCgroup(child)
    status = wait_for_command(child, received, stop, 0.0, cgroup, poller=poller)
    assert cgroup.killed == 1
    assert status == 128 + signal.SIGKILL
    timeouts = pollers[0].timeouts
    # the grace period (0 here) is the only bounded wait; after the kill, only the pidfd
    assert timeouts[0] == 0 and all(t is None for t in timeouts[1:])
    assert stop.fileno() not in pollers[0].registered
    stop.close()
