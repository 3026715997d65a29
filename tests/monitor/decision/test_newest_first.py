import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oomguard.monitor.decision.candidate import Candidate, newest_first_key
from oomguard.monitor.decision.newest_first import (
    Decision,
    InFlight,
    Limits,
    Outcome,
    SkipReason,
    decide,
)

MiB = 2**20
LIMITS = Limits(target=200 * MiB, buffer=10 * MiB, in_flight_timeout=5.0)


def cand(id_, started, mib, **kw):
    return Candidate(id=str(id_), name=f"w{id_}", started_at=started, memory_bytes=mib * MiB, **kw)


def ids(decision: Decision):
    return [v.id for v in decision.victims]


def test_under_target_nothing_to_free():
    d = decide([cand(1, 1.0, 100)], usage=150 * MiB, limits=LIMITS, now=10.0)
    assert d.outcome is Outcome.NOTHING_TO_FREE
    assert d.victims == ()
    assert d.amount_to_free == 0


def test_newest_first_until_covered_in_one_decision():
    pool = [cand(i, float(i), 40) for i in range(1, 7)]
    # need 250 - 200 + 10 = 60 MiB: two newest (40 + 40) cover it
    d = decide(pool, usage=250 * MiB, limits=LIMITS, now=10.0)
    assert d.outcome is Outcome.VICTIMS
    assert ids(d) == ["6", "5"]
    assert d.amount_to_free == 60 * MiB
    assert d.covers
    assert d.victim_bytes == 80 * MiB


def test_a_single_big_newest_victim_suffices():
    pool = [cand(1, 1.0, 10), cand(2, 2.0, 100)]
    d = decide(pool, usage=250 * MiB, limits=LIMITS, now=10.0)
    assert ids(d) == ["2"]


def test_exact_cover_stops_there():
    pool = [cand(1, 1.0, 30), cand(2, 2.0, 30), cand(3, 3.0, 30)]
    d = decide(pool, usage=250 * MiB, limits=LIMITS, now=10.0)  # 60 MiB needed
    assert ids(d) == ["3", "2"]


def test_ties_on_start_time_are_broken_by_id_whatever_the_input_order():
    pool = [cand("b", 5.0, 40), cand("a", 5.0, 40), cand("c", 5.0, 40), cand("old", 1.0, 40)]
    results = {tuple(ids(decide(p, 250 * MiB, LIMITS, 10.0))) for p in itertools.permutations(pool)}
    assert results == {("a", "b")}


def test_preference_rank_goes_before_age():
    pool = [
        cand("guaranteed-new", 9.0, 40, preference_rank=2),
        cand("besteffort-old", 1.0, 40, preference_rank=0),
        cand("burstable-new", 8.0, 40, preference_rank=1),
        cand("besteffort-new", 2.0, 10, preference_rank=0),
    ]
    d = decide(pool, usage=250 * MiB, limits=LIMITS, now=10.0)  # 60 MiB
    assert ids(d) == ["besteffort-new", "besteffort-old", "burstable-new"]


def test_zero_memory_candidates_are_skipped_not_chosen():
    pool = [cand(1, 1.0, 100), cand(2, 2.0, 0), cand(3, 3.0, 0)]
    d = decide(pool, usage=250 * MiB, limits=LIMITS, now=10.0)
    assert ids(d) == ["1"]
    assert {(s.candidate.id, s.reason) for s in d.skipped} == {
        ("2", SkipReason.NO_MEMORY),
        ("3", SkipReason.NO_MEMORY),
    }


def test_only_zero_memory_candidates_left_means_no_victims():
    d = decide([cand(1, 1.0, 0), cand(2, 2.0, 0)], usage=250 * MiB, limits=LIMITS, now=10.0)
    assert d.outcome is Outcome.NO_CANDIDATES
    assert d.victims == ()
    assert "2 holds-no-memory" in d.reason


def test_everything_protected_gives_empty_decision_with_reason():
    pool = [cand(1, 1.0, 100, protected=True), cand(2, 2.0, 100, protected=True)]
    d = decide(pool, usage=300 * MiB, limits=LIMITS, now=10.0)
    assert d.outcome is Outcome.NO_CANDIDATES
    assert d.victims == ()
    assert d.amount_to_free == 110 * MiB
    assert "2 protected" in d.reason
    assert all(s.reason is SkipReason.PROTECTED for s in d.skipped)


def test_no_candidates_at_all():
    d = decide([], usage=300 * MiB, limits=LIMITS, now=10.0)
    assert d.outcome is Outcome.NO_CANDIDATES
    assert "no candidates at all" in d.reason


def test_protected_newest_is_passed_over():
    pool = [cand(1, 1.0, 50), cand(2, 2.0, 50), cand(3, 3.0, 500, protected=True)]
    d = decide(pool, usage=250 * MiB, limits=LIMITS, now=10.0)
    assert ids(d) == ["2", "1"]


def test_falling_short_takes_every_eligible_and_says_so():
    pool = [cand(1, 1.0, 10), cand(2, 2.0, 10), cand(3, 3.0, 10, protected=True)]
    d = decide(pool, usage=300 * MiB, limits=LIMITS, now=10.0)
    assert d.outcome is Outcome.VICTIMS
    assert ids(d) == ["2", "1"]
    assert not d.covers
    assert "only" in d.reason


def test_dying_memory_reduces_the_amount_and_dying_are_not_chosen_again():
    pool = [cand(1, 1.0, 40), cand(2, 2.0, 40), cand(3, 3.0, 40, dying=True)]
    # 60 needed, 40 dying -> 20 more: the newest non-dying goes
    d = decide(pool, usage=250 * MiB, limits=LIMITS, now=10.0)
    assert d.amount_to_free == 20 * MiB
    assert ids(d) == ["2"]
    assert any(s.candidate.id == "3" and s.reason is SkipReason.DYING for s in d.skipped)


def test_dying_memory_that_covers_everything_means_nothing_to_free():
    pool = [cand(1, 1.0, 40), cand(2, 2.0, 100, dying=True)]
    d = decide(pool, usage=250 * MiB, limits=LIMITS, now=10.0)
    assert d.outcome is Outcome.NOTHING_TO_FREE


class TestInFlight:
    def pool(self, *, victim_alive: bool, dying: bool = True):
        pool = [cand(i, float(i), 40) for i in range(1, 5)]
        if victim_alive:
            pool.append(cand(9, 9.0, 10, dying=dying))
        return pool

    def test_waits_while_previous_victims_alive(self):
        flight = InFlight(frozenset({"9"}), decided_at=100.0)
        d = decide(self.pool(victim_alive=True), 300 * MiB, LIMITS, now=102.0, in_flight=flight)
        assert d.outcome is Outcome.WAITING
        assert d.victims == ()
        assert d.amount_to_free > 0
        assert "1 victim(s)" in d.reason

    def test_decides_again_once_previous_victims_are_gone(self):
        flight = InFlight(frozenset({"9"}), decided_at=100.0)
        d = decide(self.pool(victim_alive=False), 300 * MiB, LIMITS, now=100.5, in_flight=flight)
        assert d.outcome is Outcome.VICTIMS
        assert ids(d) == ["4", "3", "2"]

    def test_decides_again_after_timeout_and_stops_counting_stuck_memory(self):
        flight = InFlight(frozenset({"9"}), decided_at=100.0)
        d = decide(self.pool(victim_alive=True), 300 * MiB, LIMITS, now=105.0, in_flight=flight)
        assert d.outcome is Outcome.VICTIMS
        # stuck victim's 10 MiB no longer counts as on its way out: 110 MiB needed
        assert d.amount_to_free == 110 * MiB
        assert ids(d) == ["4", "3", "2"]
        assert any(s.candidate.id == "9" and s.reason is SkipReason.STUCK for s in d.skipped)

    def test_stuck_victim_not_marked_dying_is_still_not_chosen_again(self):
        flight = InFlight(frozenset({"9"}), decided_at=100.0)
        pool = self.pool(victim_alive=True, dying=False)
        d = decide(pool, 300 * MiB, LIMITS, now=106.0, in_flight=flight)
        assert "9" not in ids(d)

    def test_just_before_timeout_still_waits(self):
        flight = InFlight(frozenset({"9"}), decided_at=100.0)
        d = decide(self.pool(victim_alive=True), 300 * MiB, LIMITS, now=104.999, in_flight=flight)
        assert d.outcome is Outcome.WAITING

    def test_under_target_while_waiting_is_nothing_to_free(self):
        flight = InFlight(frozenset({"9"}), decided_at=100.0)
        d = decide(self.pool(victim_alive=True), 100 * MiB, LIMITS, now=101.0, in_flight=flight)
        assert d.outcome is Outcome.NOTHING_TO_FREE

    def test_after_keeps_the_clock_of_a_waiting_decision(self):
        first = InFlight(frozenset({"9"}), decided_at=100.0)
        waiting = Decision(Outcome.WAITING, 1, "wait")
        assert InFlight.after(waiting, now=103.0, previous=first) is first
        chosen = decide([cand(1, 1.0, 200)], 300 * MiB, LIMITS, now=106.0)
        nxt = InFlight.after(chosen, now=106.0, previous=first)
        assert nxt == InFlight(frozenset({"1"}), 106.0)
        assert InFlight.after(waiting, now=1.0, previous=None) is None


def test_duplicate_ids_are_rejected():
    with pytest.raises(ValueError, match="unique"):
        decide([cand(1, 1.0, 1), cand(1, 2.0, 1)], 300 * MiB, LIMITS, now=1.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target": -1, "buffer": 0, "in_flight_timeout": 1.0},
        {"target": 0, "buffer": -1, "in_flight_timeout": 1.0},
        {"target": 0, "buffer": 0, "in_flight_timeout": -1.0},
    ],
)
def test_limits_reject_negative_values(kwargs):
    with pytest.raises(ValueError, match="must not be negative"):
        Limits(**kwargs)


candidates_strategy = st.lists(
    st.builds(
        Candidate,
        id=st.text(alphabet="abcdef0123456789", min_size=1, max_size=4),
        name=st.just("w"),
        started_at=st.floats(min_value=0, max_value=1000, allow_nan=False).map(
            lambda f: round(f, 1)
        ),
        memory_bytes=st.integers(min_value=0, max_value=500 * MiB),
        protected=st.booleans(),
        dying=st.booleans(),
        preference_rank=st.integers(min_value=0, max_value=2),
    ),
    max_size=12,
    unique_by=lambda c: c.id,
)


@given(
    candidates_strategy,
    st.integers(min_value=0, max_value=2000 * MiB),
    st.integers(min_value=0, max_value=1000 * MiB),
    st.integers(min_value=0, max_value=100 * MiB),
    st.randoms(use_true_random=False),
)
def test_decision_properties(pool, usage, target, buffer, rnd):
    limits = Limits(target=target, buffer=buffer, in_flight_timeout=5.0)
    d = decide(pool, usage, limits, now=1.0)
    dying = sum(c.memory_bytes for c in pool if c.dying)
    assert d.amount_to_free == max(0, usage - target + buffer - dying)

    eligible = sorted(
        (c for c in pool if not c.protected and not c.dying and c.memory_bytes > 0),
        key=newest_first_key,
    )
    if d.amount_to_free == 0:
        assert d.outcome is Outcome.NOTHING_TO_FREE and d.victims == ()
    elif not eligible:
        assert d.outcome is Outcome.NO_CANDIDATES and d.victims == ()
    else:
        assert d.outcome is Outcome.VICTIMS
        # victims are the shortest newest-first prefix of the eligible that covers the amount
        assert list(d.victims) == eligible[: len(d.victims)]
        if d.covers:
            assert sum(v.memory_bytes for v in d.victims[:-1]) < d.amount_to_free
        else:
            assert list(d.victims) == eligible
    # no protected, dying or empty victim ever
    assert all(not v.protected and not v.dying and v.memory_bytes > 0 for v in d.victims)
    # skipped are exactly the ineligible when victims were chosen or none could be
    if d.outcome in (Outcome.VICTIMS, Outcome.NO_CANDIDATES):
        assert {s.candidate.id for s in d.skipped} == {c.id for c in pool} - {
            c.id for c in eligible
        }
    # deterministic regardless of input order
    shuffled = list(pool)
    rnd.shuffle(shuffled)
    assert decide(shuffled, usage, limits, now=1.0) == d


@given(
    candidates_strategy,
    st.integers(min_value=1, max_value=2000 * MiB),
    st.floats(min_value=0, max_value=10, allow_nan=False),
)
def test_never_new_victims_while_previous_alive_before_timeout(pool, usage, elapsed):
    if not pool:
        return
    flight = InFlight(frozenset({pool[0].id}), decided_at=50.0)
    limits = Limits(target=0, buffer=0, in_flight_timeout=5.0)
    d = decide(pool, usage, limits, now=50.0 + elapsed, in_flight=flight)
    if elapsed < 5.0:
        assert d.victims == ()
    else:
        assert pool[0].id not in ids(d)
