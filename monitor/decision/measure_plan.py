"""Measure only what a decision needs: the newest-first rule rarely looks past its first few
candidates, so reading every candidate's memory on every step is wasted work (under a storm,
a step every spacing, each reading /proc/PID/smaps_rollup of every process).

Candidates are listed without their memory (cheap: who, since when, protected, dying) and
measured in the order :func:`~oomguard.monitor.decision.newest_first.decide` looks at them:
:func:`first_to_measure` (the dying, whose memory is on its way out and lowers the amount to
free, and the last decision's victims) before usage is read, then
:func:`measured_for_decision`, only when the decision will choose, the eligible newest first
until they cover the amount. ``decide`` on the result chooses what it would with every
candidate measured (a property test holds it to that); candidates left unmeasured are left
out, and it never needed them.

Pure but for ``measure``, which the caller supplies (it reads /proc).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from oomguard.monitor.decision.amount_to_free import amount_to_free, bytes_on_their_way_out
from oomguard.monitor.decision.candidate import Candidate, newest_first_key
from oomguard.monitor.decision.newest_first import InFlight, Limits

Measure = Callable[[Sequence[Candidate]], list[Candidate]]


def first_to_measure(
    listed: Sequence[Candidate], limits: Limits, now: float, in_flight: InFlight | None
) -> list[Candidate]:
    """What every decision needs measured, before usage is read: the dying (their memory
    lowers the amount to free) and the last decision's victims. Measured before usage so a
    victim that exits in between counts as dying *and* is gone from usage, never neither."""
    previous = in_flight.victim_ids if in_flight is not None else frozenset()
    stuck = _stuck(listed, limits, now, in_flight)
    return [c for c in listed if (c.dying and c.id not in stuck) or c.id in previous]


def measured_for_decision(
    listed: Sequence[Candidate],
    first: Sequence[Candidate],
    usage: int,
    limits: Limits,
    now: float,
    in_flight: InFlight | None,
    measure: Measure,
) -> list[Candidate]:
    """The candidates ``decide`` needs: ``first`` (:func:`first_to_measure`, measured), the
    protected and stuck as listed (skipped whatever they hold), and, only when the decision
    will choose, the eligible newest first until they cover the amount to free."""
    previous = in_flight.victim_ids if in_flight is not None else frozenset()
    stuck = _stuck(listed, limits, now, in_flight)
    pool = list(first)
    dying = bytes_on_their_way_out(c for c in pool if c.id not in stuck)
    amount = amount_to_free(usage, limits.target, limits.buffer, dying)
    measured_ids = {c.id for c in first_to_measure(listed, limits, now, in_flight)}
    unmeasured = [c for c in listed if c.id not in measured_ids]
    pool += [c for c in unmeasured if c.protected or c.id in stuck]
    waiting = any(c.id in previous for c in pool) and not stuck
    if amount == 0 or waiting:
        return pool  # nothing to free, or waiting for victims: decide chooses nobody
    eligible = sorted(
        (c for c in unmeasured if not (c.protected or c.dying or c.id in stuck)),
        key=newest_first_key,
    )
    covered = 0
    for candidate in eligible:
        if covered >= amount:
            break
        for measured in measure([candidate]):
            pool.append(measured)
            covered += max(measured.memory_bytes, 0)
    return pool


def _stuck(
    listed: Sequence[Candidate], limits: Limits, now: float, in_flight: InFlight | None
) -> set[str]:
    """The last decision's victims still listed after the in-flight timeout."""
    if in_flight is None or now - in_flight.decided_at < limits.in_flight_timeout:
        return set()
    return {c.id for c in listed if c.id in in_flight.victim_ids}
