"""Processes in a guarded cgroup as candidates, and stopping the chosen ones.

Identity is ``pid:start_ticks``-like (``pid@started_at``), never the bare pid: a pid can be
reused between listing and killing, so every signal goes through a pidfd opened after
checking that the process still has the start time we decided on. A pidfd also tells us
when the process has exited (it becomes readable), without polling /proc.

Stopping is SIGTERM now, then SIGKILL for whoever is still alive after the grace period, or
sooner for a victim asleep in memory.high's throttling penalty: ``victim_escalation.py``,
in a background thread so the guard keeps watching meanwhile; the decision's in-flight rule
keeps it from choosing more victims until these are gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from oomguard.monitor.actions.outcome import Outcome
from oomguard.monitor.actions.victim_escalation import Signalled, VictimEscalation
from oomguard.monitor.decision.candidate import Candidate
from oomguard.monitor.kernel.procfs import ProcReader

THROTTLED_PATIENCE = 0.2  # seconds a victim may sleep in memory.high's penalty before SIGKILL


@dataclass(frozen=True)
class KillRecord:
    """What happened to one victim, for logs and the JSON report (times are monotonic)."""

    pid: int
    cmdline: tuple[str, ...]
    started_at: float  # seconds after boot
    memory_bytes: int
    signal: str | None  # the signal that ended it: SIGTERM or SIGKILL; None when dry-run/gone
    detected_at: float
    signalled_at: float | None  # first signal sent
    exited_at: float | None  # pidfd readable; None if it outlived the wait
    outcome: Outcome  # EXITED, STUCK, GONE or DRY_RUN

    def __post_init__(self) -> None:
        # also built from text (a test, a saved report): keep the field an Outcome
        object.__setattr__(self, "outcome", Outcome(self.outcome))

    @property
    def detection_to_signal_seconds(self) -> float | None:
        return None if self.signalled_at is None else self.signalled_at - self.detected_at

    @property
    def detection_to_exit_seconds(self) -> float | None:
        return None if self.exited_at is None else self.exited_at - self.detected_at


def candidate_id(pid: int, started_at: float) -> str:
    return f"{pid}@{started_at:.2f}"


def pid_of(candidate: Candidate) -> int:
    return int(candidate.id.partition("@")[0])


class ProcessTarget:
    """Lists the guarded processes and stops victims. Thread-safe."""

    def __init__(
        self,
        list_pids: Callable[[], Sequence[int]],
        protected_pids: frozenset[int] = frozenset(),
        *,
        grace: float = 5.0,
        throttled_patience: float | None = THROTTLED_PATIENCE,
        dry_run: bool = False,
        reader: ProcReader | None = None,
        on_record: Callable[[KillRecord], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._list_pids = list_pids
        self._protected = protected_pids
        self._grace = grace
        # None, or not below the grace: every victim waits its whole grace
        self._throttled_patience = (
            throttled_patience
            if throttled_patience is not None and throttled_patience < grace
            else None
        )
        self._dry_run = dry_run
        self._reader = reader or ProcReader()
        self._on_record = on_record
        self._clock = clock
        self._lock = threading.Lock()
        self._dying: set[str] = set()  # candidate ids signalled and not yet seen exit
        self._gone: set[str] = set()  # candidate ids whose exit we observed
        self._cmdlines: dict[str, tuple[str, ...]] = {}
        self._records: list[KillRecord] = []
        self._dry_run_seen: set[str] = set()
        self._threads: list[threading.Thread] = []

    @property
    def records(self) -> list[KillRecord]:
        with self._lock:
            return list(self._records)

    def candidates(self) -> list[Candidate]:
        """Live processes of the cgroup, measured; zombies and processes we saw exit are
        left out."""
        return self.measure(self.listing())

    def listing(self) -> list[Candidate]:
        """Live processes of the cgroup without their memory (``memory_bytes`` 0, ``name``
        the command name): one read of /proc/PID/stat each. :meth:`measure` completes
        those a decision needs (``decision/measure_plan.py``)."""
        result: list[Candidate] = []
        for pid in self._list_pids():
            stat = self._reader.stat(pid)
            if stat is None or stat.state in ("Z", "X"):
                continue
            started_at = self._reader.started_at_of(stat)
            cid = candidate_id(pid, started_at)
            with self._lock:
                if cid in self._gone:
                    continue
                dying = cid in self._dying
            result.append(
                Candidate(
                    id=cid,
                    name=f"[{stat.comm}]",
                    started_at=started_at,
                    memory_bytes=0,
                    protected=pid in self._protected,
                    dying=dying,
                )
            )
        return result

    def measure(self, listed: Sequence[Candidate]) -> list[Candidate]:
        """``listed`` with their memory and command line; a process that exited (or whose
        pid now belongs to another process) since it was listed is left out."""
        result: list[Candidate] = []
        for candidate in listed:
            pid = pid_of(candidate)
            info = self._reader.read(pid)
            if info is None or candidate_id(pid, info.started_at) != candidate.id:
                continue
            with self._lock:
                self._cmdlines[candidate.id] = info.cmdline
            name = " ".join(info.cmdline) or f"[{info.comm}]"
            result.append(replace(candidate, name=name, memory_bytes=info.memory.bytes))
        return result

    def stop(self, victims: Sequence[Candidate], detected_at: float) -> None:
        """Send SIGTERM to every victim now; escalate to SIGKILL after the grace period."""
        if not victims:
            return
        if self._dry_run:
            for v in victims:
                with self._lock:
                    seen = v.id in self._dry_run_seen
                    self._dry_run_seen.add(v.id)
                if not seen:  # report each would-be victim once, however often it is chosen
                    self._record(
                        self._make_record(v, None, detected_at, None, None, Outcome.DRY_RUN)
                    )
            return
        batch: list[Signalled] = []
        for v in victims:
            fd = self._open_if_same(v)
            if fd is None:
                self._record(self._make_record(v, None, detected_at, None, None, Outcome.GONE))
                continue
            with self._lock:
                self._dying.add(v.id)
            # ProcessLookupError: exited meanwhile; the pidfd is readable, the watcher records it
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, signal.SIGTERM)
            batch.append(Signalled(v, fd, self._clock()))
        if batch:

            def finish(
                victim: Candidate,
                used: str | None,
                signalled_at: float | None,
                exited_at: float | None,
                outcome: Outcome,
            ) -> None:
                self._record(
                    self._make_record(victim, used, detected_at, signalled_at, exited_at, outcome)
                )

            escalation = VictimEscalation(
                self._grace,
                self._throttled_patience,
                self._reader.throttled,
                pid_of,
                finish,
                self._clock,
            )
            thread = threading.Thread(
                target=escalation.run, args=(batch,), name="oomguard-kill", daemon=True
            )
            with self._lock:
                self._threads.append(thread)
            thread.start()

    def wait_idle(self, timeout: float) -> None:
        """Wait for running escalations (used on shutdown so the report is complete)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _open_if_same(self, victim: Candidate) -> int | None:
        pid = pid_of(victim)
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return None
        # The pid might have been reused since we listed it: check identity after opening.
        started = self._reader.started_at(pid)
        if started is None or candidate_id(pid, started) != victim.id:
            os.close(fd)
            return None
        return fd

    def _make_record(
        self,
        victim: Candidate,
        used: str | None,
        detected_at: float,
        signalled_at: float | None,
        exited_at: float | None,
        outcome: Outcome,
    ) -> KillRecord:
        with self._lock:
            cmdline = self._cmdlines.get(victim.id, (victim.name,))
        return KillRecord(
            pid=pid_of(victim),
            cmdline=cmdline,
            started_at=victim.started_at,
            memory_bytes=victim.memory_bytes,
            signal=used,
            detected_at=detected_at,
            signalled_at=signalled_at,
            exited_at=exited_at,
            outcome=outcome,
        )

    def _record(self, record: KillRecord) -> None:
        cid = candidate_id(record.pid, record.started_at)
        with self._lock:
            self._records.append(record)
            if record.outcome in (Outcome.EXITED, Outcome.GONE):
                self._dying.discard(cid)
                self._gone.add(cid)
        if self._on_record is not None:
            self._on_record(record)
