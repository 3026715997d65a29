"""The newest-first policy: who to stop so usage falls back under target, in one decision.

Why newest first: the oldest work has done the most and is the most expensive to redo;
the newest arrived last and tipped the balance. The kernel OOM killer, choosing by size,
often kills exactly the oldest.

Rules, in order:

1. ``amount = usage - target + buffer - memory already dying``; if that is <= 0 there is
   nothing to do.
2. In-flight: while any victim of the previous decision is still alive, choose nobody (the
   kernel needs time to tear a process down; deciding again would kill extra victims for
   memory that is about to come back). After ``in_flight_timeout`` the previous victims
   count as stuck: their memory no longer counts as on its way out and we decide again.
3. Eligible = not protected, not dying, and holding memory. Zero-memory candidates are
   skipped even when nothing else is left: stopping them frees nothing, so it would cost
   their work and not move usage at all. If eligible candidates cannot cover the amount,
   all of them are chosen (and the decision says it falls short), because freeing some
   memory still buys time before the kernel OOM killer fires.
4. Order: ``preference_rank`` ascending, then newest ``started_at``, then ``id`` so equal
   start times are ordered the same way whatever the input order. Victims are the shortest
   prefix of that order whose memory covers the amount.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from oomguard.monitor.decision.amount_to_free import (
    amount_to_free,
    bytes_on_their_way_out,
    first_covering,
)
from oomguard.monitor.decision.candidate import Candidate, newest_first_key


class Outcome(Enum):
    NOTHING_TO_FREE = "nothing-to-free"  # usage (minus dying memory) is under target - buffer
    WAITING = "waiting-for-victims"  # previous victims still alive, timeout not reached
    VICTIMS = "victims"  # stop ``victims``
    NO_CANDIDATES = "no-candidates"  # memory must be freed but nobody may be stopped


class SkipReason(Enum):
    PROTECTED = "protected"
    DYING = "already-dying"
    STUCK = "still-alive-after-timeout"
    NO_MEMORY = "holds-no-memory"


@dataclass(frozen=True)
class Skipped:
    candidate: Candidate
    reason: SkipReason


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    amount_to_free: int
    reason: str
    victims: tuple[Candidate, ...] = ()
    skipped: tuple[Skipped, ...] = ()

    @property
    def victim_bytes(self) -> int:
        return sum(v.memory_bytes for v in self.victims)

    @property
    def covers(self) -> bool:
        """True when the victims' memory is enough to reach the target."""
        return self.victim_bytes >= self.amount_to_free


@dataclass(frozen=True)
class InFlight:
    """The victims of the last decision that chose any, and when it was made."""

    victim_ids: frozenset[str]
    decided_at: float

    @classmethod
    def after(cls, decision: Decision, now: float, previous: InFlight | None) -> InFlight | None:
        """The in-flight state to pass to the next ``decide`` call.

        A decision with victims starts a new wait; one without keeps the old one (a
        WAITING decision must not restart the clock, or the timeout would never expire).
        """
        if decision.victims:
            return cls(frozenset(v.id for v in decision.victims), now)
        return previous


@dataclass(frozen=True)
class Limits:
    """Where usage must go: below ``target - buffer``. Timeout in seconds."""

    target: int
    buffer: int
    in_flight_timeout: float

    def __post_init__(self) -> None:
        if self.target < 0 or self.buffer < 0:
            raise ValueError(f"target and buffer must not be negative: {self}")
        if self.in_flight_timeout < 0:
            raise ValueError(f"in_flight_timeout must not be negative: {self}")


def decide(
    candidates: Iterable[Candidate],
    usage: int,
    limits: Limits,
    now: float,
    in_flight: InFlight | None = None,
) -> Decision:
    """One decision for the current state; pure, so every rule is testable with plain data."""
    pool = tuple(candidates)
    ids = [c.id for c in pool]
    if len(set(ids)) != len(ids):
        raise ValueError(f"candidate ids must be unique: {sorted(ids)}")

    alive_previous: tuple[Candidate, ...] = ()
    timed_out = False
    if in_flight is not None:
        alive_previous = tuple(c for c in pool if c.id in in_flight.victim_ids)
        timed_out = now - in_flight.decided_at >= limits.in_flight_timeout
    stuck_ids = frozenset(c.id for c in alive_previous) if timed_out else frozenset()

    dying = bytes_on_their_way_out(c for c in pool if c.id not in stuck_ids)
    amount = amount_to_free(usage, limits.target, limits.buffer, dying)
    if amount == 0:
        return Decision(
            Outcome.NOTHING_TO_FREE,
            0,
            f"usage {usage} minus {dying} dying is within target {limits.target} "
            f"- buffer {limits.buffer}",
        )
    if alive_previous and not timed_out:
        assert in_flight is not None
        waited = now - in_flight.decided_at
        return Decision(
            Outcome.WAITING,
            amount,
            f"{len(alive_previous)} victim(s) of the previous decision still alive after "
            f"{waited:.3f}s (timeout {limits.in_flight_timeout}s)",
        )

    skipped: list[Skipped] = []
    eligible: list[Candidate] = []
    for c in pool:
        if c.protected:
            skipped.append(Skipped(c, SkipReason.PROTECTED))
        elif c.id in stuck_ids:
            skipped.append(Skipped(c, SkipReason.STUCK))
        elif c.dying:
            skipped.append(Skipped(c, SkipReason.DYING))
        elif c.memory_bytes <= 0:
            skipped.append(Skipped(c, SkipReason.NO_MEMORY))
        else:
            eligible.append(c)
    skipped.sort(key=lambda s: newest_first_key(s.candidate))
    eligible.sort(key=newest_first_key)

    if not eligible:
        counts = _count_reasons(skipped)
        return Decision(
            Outcome.NO_CANDIDATES,
            amount,
            f"must free {amount} bytes but no candidate may be stopped ({counts})",
            skipped=tuple(skipped),
        )

    victims, covered = first_covering(eligible, amount)
    if covered >= amount:
        reason = f"{len(victims)} newest candidate(s) free {covered} of {amount} bytes needed"
    else:
        reason = (
            f"all {len(victims)} eligible candidate(s) free only {covered} of {amount} bytes needed"
        )
    return Decision(Outcome.VICTIMS, amount, reason, tuple(victims), tuple(skipped))


def _count_reasons(skipped: Iterable[Skipped]) -> str:
    counts: dict[str, int] = {}
    for s in skipped:
        counts[s.reason.value] = counts.get(s.reason.value, 0) + 1
    if not counts:
        return "no candidates at all"
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
