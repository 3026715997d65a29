"""One batch seen through directly (``test_process_target.py`` covers it through
``ProcessTarget.stop``): each victim reported once, by the signal that ended it, and every
pidfd closed at the end."""

import os
import signal
import subprocess
import sys
import time

from oomguard.monitor.actions.outcome import Outcome
from oomguard.monitor.actions.victim_escalation import Signalled, VictimEscalation
from oomguard.monitor.decision.candidate import Candidate

HOLD = """
import signal, sys, time
if sys.argv[1] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


def spawn(mode: str) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-c", HOLD, mode], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def signalled(p: subprocess.Popen[str], name: str) -> Signalled:
    fd = os.pidfd_open(p.pid)
    signal.pidfd_send_signal(fd, signal.SIGTERM)
    victim = Candidate(id=name, name=name, started_at=0.0, memory_bytes=1)
    return Signalled(victim, fd, time.monotonic())


def test_a_mixed_batch_reports_each_victim_once_and_closes_every_pidfd() -> None:
    cooperative, stubborn = spawn("plain"), spawn("ignore-term")
    pids = {"cooperative": cooperative.pid, "stubborn": stubborn.pid}
    try:
        batch = [signalled(cooperative, "cooperative"), signalled(stubborn, "stubborn")]
        ended: list[tuple[str, str | None, Outcome]] = []
        escalation = VictimEscalation(
            grace=0.3,
            throttled_patience=None,
            is_throttled=lambda pid: None,
            pid_of=lambda c: pids[c.id],
            finish=lambda victim, used, sent, exited, outcome: ended.append(
                (victim.id, used, outcome)
            ),
            clock=time.monotonic,
        )
        escalation.run(batch)  # returns once both are accounted for
        assert sorted(ended) == [
            ("cooperative", "SIGTERM", Outcome.EXITED),
            ("stubborn", "SIGKILL", Outcome.EXITED),
        ]
        for item in batch:
            try:
                os.fstat(item.fd)
            except OSError:
                continue
            raise AssertionError(f"pidfd {item.fd} of {item.victim.id} left open")
        assert cooperative.wait(timeout=60) == -signal.SIGTERM
        assert stubborn.wait(timeout=60) == -signal.SIGKILL
    finally:
        for p in (cooperative, stubborn):
            p.kill()
            p.wait()
