"""One batch of signalled victims seen through to the end, in a background thread.

SIGTERM has been sent through each victim's pidfd. Whoever is still alive when the grace
period ends gets SIGKILL, and so does a victim found asleep in memory.high's throttling
penalty, where its SIGTERM handler cannot run (``decision/throttled_victims.py``; looked at
every ``THROTTLE_CHECK_SECONDS`` during the grace). Every exit is seen on the pidfd (it
becomes readable), never by polling /proc; a victim that outlives SIGKILL by
``EXIT_WAIT_AFTER_SIGKILL`` is reported stuck (in D state, say).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
from collections.abc import Callable
from dataclasses import dataclass

from oomguard.monitor.actions.outcome import Outcome
from oomguard.monitor.decision.candidate import Candidate
from oomguard.monitor.decision.throttled_victims import ThrottledVictims

EXIT_WAIT_AFTER_SIGKILL = 10.0  # seconds; a SIGKILLed process that outlives this is stuck in D
THROTTLE_CHECK_SECONDS = 0.05  # how often the grace looks at the victims' wchan

logger = logging.getLogger(__name__)

# victim, signal that ended it (or None), when signalled, when it exited (or None), outcome
Finish = Callable[[Candidate, str | None, float | None, float | None, Outcome], None]


@dataclass(frozen=True)
class Signalled:
    """A victim that was sent SIGTERM: its open pidfd and when the signal went."""

    victim: Candidate
    fd: int
    sent_at: float


@dataclass(frozen=True)
class VictimEscalation:
    grace: float
    throttled_patience: float | None  # None: every victim waits its whole grace
    is_throttled: Callable[[int], bool | None]  # pid -> asleep in the penalty (None: unknown)
    pid_of: Callable[[Candidate], int]
    finish: Finish  # called once per victim with how it ended
    clock: Callable[[], float]

    def run(self, batch: list[Signalled]) -> None:
        """Until every victim of ``batch`` is accounted for; closes their pidfds."""
        poller = select.poll()
        pending: dict[int, Signalled] = {}
        for item in batch:
            poller.register(item.fd, select.POLLIN)
            pending[item.fd] = item
        killed: set[int] = set()
        try:
            grace_end = self.clock() + self.grace
            check = None
            if self.throttled_patience is not None:
                throttled = ThrottledVictims(self.throttled_patience)

                def check() -> None:
                    self._kill_throttled(pending, killed, throttled)

            self._wait_exits(poller, pending, grace_end, killed, check)
            for fd in pending:
                if fd not in killed:
                    _sigkill(fd, killed)
            self._wait_exits(poller, pending, self.clock() + EXIT_WAIT_AFTER_SIGKILL, killed)
            for item in pending.values():
                self.finish(item.victim, "SIGKILL", item.sent_at, None, Outcome.STUCK)
        finally:
            for item in batch:
                os.close(item.fd)

    def _kill_throttled(
        self, pending: dict[int, Signalled], killed: set[int], throttled: ThrottledVictims
    ) -> None:
        """SIGKILL the victims that have slept in memory.high's penalty for the patience."""
        now = self.clock()
        for fd, item in pending.items():
            if fd in killed:
                continue
            victim = item.victim
            try:
                asleep = self.is_throttled(self.pid_of(victim)) is True
            except OSError as err:  # a look that failed keeps the victim's whole grace
                logger.debug("cannot tell whether victim %s is throttled: %s", victim.id, err)
                asleep = False
            if throttled.kill_now(victim.id, asleep, now):
                logger.info(
                    "victim %s asleep in memory.high's throttling penalty, where its SIGTERM "
                    "handler cannot run: SIGKILL before its grace ends",
                    victim.id,
                )
                _sigkill(fd, killed)

    def _wait_exits(
        self,
        poller: select.poll,
        pending: dict[int, Signalled],
        deadline: float,
        killed: set[int],
        check: Callable[[], None] | None = None,
    ) -> None:
        """Report exits until none is pending or ``deadline``; ``check`` runs every
        THROTTLE_CHECK_SECONDS meanwhile (without it, the thread sleeps until an exit)."""
        while pending:
            remaining = deadline - self.clock()
            if remaining <= 0:
                return
            if check is not None:
                remaining = min(remaining, THROTTLE_CHECK_SECONDS)
            for fd, _ in poller.poll(remaining * 1000):
                if fd not in pending:
                    continue
                item = pending.pop(fd)
                poller.unregister(fd)
                used = "SIGKILL" if fd in killed else "SIGTERM"
                self.finish(item.victim, used, item.sent_at, self.clock(), Outcome.EXITED)
            if check is not None and pending:
                check()


def _sigkill(fd: int, killed: set[int]) -> None:
    """SIGKILL the process behind ``fd`` (gone already is fine) and note that it was sent."""
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(fd, signal.SIGKILL)
    killed.add(fd)
