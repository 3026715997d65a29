"""What the node agent remembers between steps about the pods it chose, and the plan of one
step built from it. Pure: plain data in, plain data out, the clock passed in.

Between steps it keeps which pods were chosen and when (evicted, PDB-blocked or with the API
server unreachable: ``chosen_at``), which were blocked by a PodDisruptionBudget and until
when they count as protected (``blocked_until``), the evictions still in flight, and the
outcome of the last decision. One step then applies, in this order:

1. forget pods that are gone from the node (:meth:`forget_gone`);
2. count a pod blocked by a PDB as protected for a while (:meth:`with_blocked`), longer
   than the kill-fallback wait, so the fallback can see that nothing evictable is left;
3. the last resort (:meth:`fallback`, ``kill_fallback.py``) before any new decision:
   first evicted pods still alive past the in-flight timeout (``evicted_at``), then pods
   chosen but not evictable once nothing evictable is left;
4. one newest-first decision over the pods not chosen yet, plus those in flight
   (:meth:`decide`), and the eviction walk: its victims, then every other eligible pod
   not chosen yet, in policy order, to pass over PDB-blocked ones (:meth:`walk`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace

from oomguard.monitor.decision.candidate import Candidate, newest_first_key
from oomguard.monitor.decision.episode import episode_lasts
from oomguard.monitor.decision.kill_fallback import FallbackDecision, kill_fallback, stuck_kill
from oomguard.monitor.decision.newest_first import Decision, InFlight, Limits, Outcome, decide


@dataclass(frozen=True)
class EvictionLimits:
    """The eviction settings one step plans with."""

    target: int
    buffer: int
    grace_seconds: float
    kill_fallback_wait: float
    kill_fallback: bool = True

    @property
    def blocked_for(self) -> float:
        """How long a PDB-blocked pod counts as protected: beyond the fallback wait."""
        return 2 * self.kill_fallback_wait + 5

    @property
    def decision_limits(self) -> Limits:
        return Limits(self.target, self.buffer, self.grace_seconds + self.kill_fallback_wait)


def eviction_order(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Who would go first right now: eligible candidates in policy order."""
    return sorted(
        (c for c in candidates if not (c.protected or c.dying) and c.memory_bytes > 0),
        key=newest_first_key,
    )


class EvictionPlanner:
    def __init__(self) -> None:
        self.chosen_at: dict[str, float] = {}
        self.evicted_at: dict[str, float] = {}  # evictions accepted, the pod not gone yet
        self.blocked_until: dict[str, float] = {}
        self.in_flight: InFlight | None = None
        self.last_outcome: Outcome | None = None

    def forget_gone(self, alive: Collection[str]) -> None:
        for uid in [u for u in self.chosen_at if u not in alive]:
            del self.chosen_at[uid]
        for uid in [u for u in self.evicted_at if u not in alive]:
            del self.evicted_at[uid]
        for uid in [u for u in self.blocked_until if u not in alive]:
            del self.blocked_until[uid]

    def with_blocked(self, candidates: Iterable[Candidate], now: float) -> list[Candidate]:
        """The candidates, those blocked by a PDB until after ``now`` marked protected."""
        return [
            replace(c, protected=True)
            if self.blocked_until.get(c.id, -1.0) > now and not c.protected
            else c
            for c in candidates
        ]

    def fallback(
        self,
        now: float,
        usage: int,
        candidates: Sequence[Candidate],
        api_connected: bool,
        limits: EvictionLimits,
    ) -> FallbackDecision:
        stuck = stuck_kill(
            now,
            usage,
            limits.target,
            limits.buffer,
            limits.decision_limits.in_flight_timeout,
            self.evicted_at,
            candidates,
            limits.kill_fallback,
        )
        if stuck.victims:
            return stuck
        order = eviction_order(candidates)
        evictable_left = api_connected and any(c.id not in self.chosen_at for c in order)
        return kill_fallback(
            now,
            usage,
            limits.target,
            limits.buffer,
            limits.kill_fallback_wait,
            self.chosen_at,
            candidates,
            evictable_left,
            limits.kill_fallback,
        )

    def decide(
        self, candidates: Sequence[Candidate], usage: int, now: float, limits: EvictionLimits
    ) -> Decision:
        in_flight = self.in_flight.victim_ids if self.in_flight is not None else frozenset()
        pool = [c for c in candidates if c.id not in self.chosen_at or c.id in in_flight]
        return decide(pool, usage, limits.decision_limits, now, self.in_flight)

    def walk(self, decision: Decision, candidates: Sequence[Candidate]) -> list[Candidate]:
        """The eviction walk: the decision's victims, then the other eligible pods not
        chosen yet, in policy order (PDB-blocked victims are passed over to them)."""
        victim_ids = {v.id for v in decision.victims}
        rest = [
            c
            for c in eviction_order(candidates)
            if c.id not in victim_ids and c.id not in self.chosen_at
        ]
        return [*decision.victims, *rest]

    def killed(self, victims: Iterable[str], now: float) -> None:
        """The last resort killed these pods' cgroups: they are in flight, no longer chosen."""
        ids = frozenset(victims)
        for uid in ids:
            self.chosen_at.pop(uid, None)
            self.evicted_at.pop(uid, None)
        self.in_flight = InFlight(ids, now)

    def evicted(
        self, evicted: Iterable[str], blocked: Iterable[str], now: float, limits: EvictionLimits
    ) -> None:
        """After an eviction walk: ``evicted`` (accepted, or the API unreachable) are chosen
        and in flight; ``blocked`` (by a PDB, or the eviction failed) are chosen and
        protected for a while: a per-pod backoff, and the kill fallback's to act on."""
        acted = frozenset(evicted)
        for uid in acted:
            self.chosen_at[uid] = now
            self.evicted_at[uid] = now
        for uid in blocked:
            self.chosen_at[uid] = now
            self.blocked_until[uid] = now + limits.blocked_for
        if acted:
            self.in_flight = InFlight(acted, now)

    def hold_triggers(self, alive: Collection[str]) -> bool:
        """Space steps unless the last one found nothing to free and the pods it chose
        (evicted or killed) are gone (``alive``: the pods and pod cgroups last measured)."""
        in_flight = self.in_flight.victim_ids if self.in_flight is not None else frozenset()
        present = any(uid in alive for uid in set(self.chosen_at) | in_flight)
        return episode_lasts(self.last_outcome, present)
